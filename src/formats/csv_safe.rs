//! Spreadsheet-safe CSV: every CSV the product writes (the hits export, trail CSV) goes through
//! [`safe_cell`] / [`SafeCsvWriter`], so a cell that a spreadsheet would run as a formula (one
//! starting with `=`, `+`, `-`, `@`, a tab or a carriage return, also after leading whitespace)
//! is written as text: prefixed with a single quote, the OWASP-recommended neutralisation.
//! Plain numbers (`-0.137433`, `+44`) are left as they are: a spreadsheet reads them as numbers,
//! never as formulas, and coordinates must stay numeric.

use std::borrow::Cow;

/// Characters that make a spreadsheet treat a cell as a formula (or a DDE command).
const FORMULA_PREFIXES: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

fn is_plain_number(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && t.parse::<f64>().is_ok_and(f64::is_finite)
}

/// The cell as a spreadsheet will show it, never as a formula.
pub fn safe_cell(text: &str) -> Cow<'_, str> {
    // Leading spaces (and other whitespace) do not stop a spreadsheet from seeing a formula.
    let first = text
        .chars()
        .find(|c| !(c.is_whitespace() && *c != '\t' && *c != '\r'));
    match first {
        Some(c) if FORMULA_PREFIXES.contains(&c) && !is_plain_number(text) => {
            Cow::Owned(format!("'{text}"))
        }
        _ => Cow::Borrowed(text),
    }
}

/// A `csv::Writer` over a byte buffer whose every cell passes through [`safe_cell`].
pub struct SafeCsvWriter {
    inner: csv::Writer<Vec<u8>>,
}

impl Default for SafeCsvWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl SafeCsvWriter {
    pub fn new() -> Self {
        Self {
            inner: csv::Writer::from_writer(Vec::new()),
        }
    }

    pub fn write_record<I, T>(&mut self, record: I) -> Result<(), csv::Error>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let cells: Vec<String> = record
            .into_iter()
            .map(|c| safe_cell(c.as_ref()).into_owned())
            .collect();
        self.inner.write_record(&cells)
    }

    /// The CSV text written so far.
    pub fn finish(self) -> Result<String, csv::Error> {
        let bytes = self.inner.into_inner().map_err(|e| e.into_error())?;
        String::from_utf8(bytes)
            .map_err(|e| csv::Error::from(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_prefixes_are_neutralised_numbers_are_not() {
        for bad in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1:A2)",
            "\tx",
            "\rx",
            "  =1+1",
            "\u{a0}@x",
            "-",
        ] {
            assert_eq!(safe_cell(bad), format!("'{bad}"), "{bad:?}");
        }
        for good in [
            "-0.137433",
            "+44",
            "51.5",
            "A1",
            "",
            "Rear door forced",
            "1e3",
        ] {
            assert_eq!(safe_cell(good), good, "{good:?}");
        }
    }

    #[test]
    fn the_writer_quotes_and_neutralises() {
        let mut w = SafeCsvWriter::new();
        w.write_record(["=1+1", "a,b", "-1.5"]).unwrap();
        assert_eq!(w.finish().unwrap(), "'=1+1,\"a,b\",-1.5\n");
    }
}
