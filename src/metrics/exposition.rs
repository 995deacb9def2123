//! The Prometheus text exposition format (version 0.0.4) for `/metrics`: every metric family is
//! written with its `# HELP` and `# TYPE` lines, and a summary always with its quantiles, `_sum`
//! and `_count`, so that a scraper (or any exposition parser) reads every family whole.

use std::fmt::Write;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds one exposition; each family is written once, whole, in the order added.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

/// HELP text escapes backslash and newline (the format's only escapes there).
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value: integers as integers, non-finite values in the format's spelling.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

impl Exposition {
    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// A monotonic counter; `name` should end in `_total`.
    pub fn counter(&mut self, name: &str, help: &str, v: u64) {
        self.header(name, help, "counter");
        let _ = writeln!(self.out, "{name} {v}");
    }

    /// A monotonic counter split by one label: one sample per `(label value, count)`.
    pub fn labeled_counter(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        samples: &[(&str, u64)],
    ) {
        self.header(name, help, "counter");
        for (at, v) in samples {
            let _ = writeln!(self.out, "{name}{{{label}=\"{at}\"}} {v}");
        }
    }

    /// A value that goes up and down.
    pub fn gauge(&mut self, name: &str, help: &str, v: f64) {
        self.header(name, help, "gauge");
        let _ = writeln!(self.out, "{name} {}", value(v));
    }

    /// A summary: `(quantile, value)` pairs, then the sum and the count of observations.
    pub fn summary(
        &mut self,
        name: &str,
        help: &str,
        quantiles: &[(f64, f64)],
        sum: f64,
        count: u64,
    ) {
        self.header(name, help, "summary");
        for (q, v) in quantiles {
            let _ = writeln!(self.out, "{name}{{quantile=\"{q}\"}} {}", value(*v));
        }
        let _ = writeln!(self.out, "{name}_sum {}", value(sum));
        let _ = writeln!(self.out, "{name}_count {count}");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_type_and_a_summary_its_sum_and_count() {
        let mut e = Exposition::default();
        e.counter("a_total", "a \\ b\nc", 3);
        e.summary(
            "lat_seconds",
            "latency",
            &[(0.5, 0.001), (0.99, 0.25)],
            1.5,
            7,
        );
        let text = e.finish();
        assert!(text.contains("# HELP a_total a \\\\ b\\nc\n# TYPE a_total counter\na_total 3\n"));
        assert!(text.contains("lat_seconds{quantile=\"0.99\"} 0.25\n"));
        assert!(text.contains("lat_seconds_sum 1.5\nlat_seconds_count 7\n"));
    }
}
