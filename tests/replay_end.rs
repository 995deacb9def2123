//! `tagstream replay --final` and `--until T` (issue 14, item 4): what happens to the event-time
//! clock when a recording ends. Without either, the last curfew night and the last sober day stay
//! open/undecided; `--final` decides what ended within the recording and raises no `no_contact`
//! because it ended; `--until` is literal and refuses a time before the clock.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

const HOME: (f64, f64) = (51.4545, -2.5879);
/// About 1.1 km north of home.
const TOWN: (f64, f64) = (51.4645, -2.5879);
const MIN: i64 = 60_000;

fn t(text: &str) -> i64 {
    tagstream::model::time::parse_time(text).unwrap()
}

fn ts(t_ms: i64) -> String {
    tagstream::model::time::format_time(t_ms)
}

/// GPS lines every 2 minutes over `[from, to)` for each `(tag, place, until)`: the tags
/// interleaved in time order (so each line is its own batch), a tag's lines stopping at its
/// `until`.
fn gps_lines(from: &str, to: &str, tags: &[(&str, (f64, f64), &str)]) -> String {
    let mut out = String::new();
    let mut x = t(from);
    while x < t(to) {
        for (tag, at, until) in tags {
            if x < t(until) {
                writeln!(
                    out,
                    r#"{{"kind":"gps","tag":"{tag}","t":"{}","lat":{},"lon":{},"precision_m":8}}"#,
                    ts(x),
                    at.0,
                    at.1
                )
                .unwrap();
            }
        }
        x += 2 * MIN;
    }
    out
}

/// Runs `tagstream replay` with `extra` arguments; returns the process output.
fn replay(dir: &Path, name: &str, extra: &[&str]) -> Output {
    Command::new(common::bin())
        .args(["replay", "--orders"])
        .arg(dir.join("orders.json"))
        .arg("--readings")
        .arg(dir.join("readings.jsonl"))
        .arg("--out")
        .arg(dir.join(name))
        .args(extra)
        .output()
        .unwrap()
}

/// `type code start..end` of every alert `replay` wrote, times as `MM-DDTHH:MM`.
fn alerts(dir: &Path, name: &str, extra: &[&str]) -> Vec<String> {
    let out = replay(dir, name, extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join(name).join("alerts.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let a: serde_json::Value = serde_json::from_str(l).unwrap();
            let short = |v: &serde_json::Value| {
                v.as_str()
                    .map_or("open".to_string(), |s| s[5..16].to_string())
            };
            format!(
                "{} {} {} {}..{}",
                a["activation"].as_str().unwrap(),
                a["type"].as_str().unwrap(),
                a["code"].as_str().unwrap_or("-"),
                short(&a["start"]),
                short(&a["end"])
            )
        })
        .collect()
}

/// P1 (T1) has a 19:00–07:00 home curfew from 2 March; P2 (T2) has no order.
fn curfew_recording(dir: &Path) {
    let orders = format!(
        r#"{{"people":[{{"id":"P1"}},{{"id":"P2"}}],
 "activations":[{{"id":"A1","person":"P1","tag":"T1","from":"2026-03-02T17:30:00Z"}},
                {{"id":"A2","person":"P2","tag":"T2","from":"2026-03-02T17:30:00Z"}}],
 "orders":[{{"id":"O1","person":"P1","from":"2026-03-02","to":"2026-03-31","conditions":[
   {{"type":"curfew","grace_min":5,"addresses":[{{"id":"home","lat":{},"lon":{},"radius_m":50}}],
     "timetable":[{{"days":["mon","tue","wed","thu","fri","sat","sun"],"start":"19:00","end":"07:00","address":"home"}}]}}]}}]}}"#,
        HOME.0, HOME.1
    );
    std::fs::write(dir.join("orders.json"), orders).unwrap();
    // T1 is in town all night and last reports at 06:48; T2 (at home) goes on to 07:04, where
    // the recording ends: before the curfew's end has settled (07:00 + 15 minutes).
    let lines = gps_lines(
        "2026-03-02T18:00:00Z",
        "2026-03-03T07:05:00Z",
        &[
            ("T1", TOWN, "2026-03-03T06:49:00Z"),
            ("T2", HOME, "2026-03-03T07:05:00Z"),
        ],
    );
    std::fs::write(dir.join("readings.jsonl"), lines).unwrap();
}

#[test]
fn final_settles_the_last_curfew_night_without_a_no_contact_for_the_recording_end() {
    let dir = tempfile::tempdir().unwrap();
    curfew_recording(dir.path());
    assert_eq!(
        alerts(dir.path(), "as-recorded", &[]),
        vec!["A1 curfew_violation AL08 03-02T19:00..open"],
        "the window's end waits for the clock"
    );
    assert_eq!(
        alerts(dir.path(), "final", &["--final"]),
        vec!["A1 curfew_violation AL12 03-02T19:00..03-03T07:00"],
        "decided; T1's silent minutes at the end are no no_contact, the next night undecided"
    );
    // The same bytes every time.
    let again = alerts(dir.path(), "final-again", &["--final"]);
    assert_eq!(
        std::fs::read(dir.path().join("final/alerts.jsonl")).unwrap(),
        std::fs::read(dir.path().join("final-again/alerts.jsonl")).unwrap(),
        "{again:?}"
    );
}

#[test]
fn until_is_literal_and_refuses_a_time_before_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    curfew_recording(dir.path());
    // Two hours on with no readings: both tags are silent for more than an hour (no_contact
    // from each one's last contact), and the next night's commencement is still to come.
    assert_eq!(
        alerts(dir.path(), "until", &["--until", "2026-03-03T09:00:00Z"]),
        vec![
            "A1 curfew_violation AL12 03-02T19:00..03-03T07:00",
            "A1 no_contact - 03-03T06:48..open",
            "A2 no_contact - 03-03T07:04..open",
        ]
    );
    // Past the next evening's commencement check plus settle time: a breach inferred from no
    // data ("possible"), as a live server whose tags all went quiet would raise.
    let evening = alerts(dir.path(), "evening", &["--until", "2026-03-03T19:30:00Z"]);
    assert!(
        evening.contains(&"A1 curfew_violation AL08 03-03T19:00..open".to_string()),
        "{evening:?}"
    );
    // Before the clock the input reached (07:04): refused, nothing written.
    let out = replay(dir.path(), "refused", &["--until", "2026-03-03T07:00:00Z"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--until 2026-03-03T07:00:00Z is before the event-time clock")
            && stderr.contains("2026-03-03T07:04:00Z"),
        "{stderr}"
    );
    assert!(!dir.path().join("refused/alerts.jsonl").exists());
    // --until and --final together make no sense.
    let out = replay(
        dir.path(),
        "both",
        &["--final", "--until", "2026-03-03T09:00:00Z"],
    );
    assert!(!out.status.success());
}

#[test]
fn final_settles_the_last_sober_day_that_ended_within_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let orders = r#"{"people":[{"id":"P1"}],
 "activations":[{"id":"A1","person":"P1","tag":"T1","from":"2026-03-01T00:00:00Z"}],
 "orders":[{"id":"O1","person":"P1","from":"2026-03-02","to":"2026-03-03",
            "conditions":[{"type":"alcohol","mode":"abstinence"}]}]}"#;
    std::fs::write(dir.path().join("orders.json"), orders).unwrap();
    // A worn, sober bracelet every 30 minutes from 2 March to `to` (3 March is the order's
    // last day); the sober days `replay` writes with `extra` arguments.
    let days = |to: &str, extra: &[&str]| -> Vec<String> {
        let mut lines = String::new();
        let from = t("2026-03-02T00:00:00Z");
        for (i, x) in (from..=t(to)).step_by(30 * MIN as usize).enumerate() {
            let i = i as f64;
            writeln!(
                lines,
                r#"{{"kind":"tac","tag":"T1","t":"{}","tac_gdl":0,"ir_v":{:.3},"temp_c":{:.2}}}"#,
                ts(x),
                1.0 + 0.04 * i.sin(),
                33.0 + 0.8 * (i / 7.0).cos()
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("readings.jsonl"), lines).unwrap();
        let name = format!("out-{}{}", &to[..16], extra.join("")).replace(':', "");
        let out = replay(dir.path(), &name, extra);
        assert!(out.status.success());
        std::fs::read_to_string(dir.path().join(name).join("sober_days.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let d: serde_json::Value = serde_json::from_str(l).unwrap();
                format!(
                    "{} {}",
                    d["date"].as_str().unwrap(),
                    d["status"].as_str().unwrap()
                )
            })
            .collect()
    };
    // The recording goes on half an hour past the last day.
    assert_eq!(
        days("2026-03-04T00:30:00Z", &[]),
        vec!["2026-03-02 sober"],
        "3 March settles 12 hours after its end"
    );
    assert_eq!(
        days("2026-03-04T00:30:00Z", &["--final"]),
        vec!["2026-03-02 sober", "2026-03-03 sober"]
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&replay(dir.path(), "summary", &["--final"]).stdout).unwrap();
    assert_eq!(summary["settled_through"], "2026-03-04T00:30:00Z");
    // The recording stops at 23:30 (as a simulation run ends at midnight): less than the
    // alcohol rule's 90-minute gap before midnight, so the day is complete.
    assert_eq!(
        days("2026-03-03T23:30:00Z", &["--final"]),
        vec!["2026-03-02 sober", "2026-03-03 sober"]
    );
    // It stops at 14:00: the rest of the day is not in the recording; undecided.
    assert_eq!(
        days("2026-03-03T14:00:00Z", &["--final"]),
        vec!["2026-03-02 sober"]
    );
}

#[test]
fn settling_does_not_depend_on_the_number_of_partitions() {
    use std::sync::Arc;
    use tagstream::pipeline::driver::InlineDriver;
    use tagstream::pipeline::{ActivationDirectory, PipelineConfig};
    use tagstream::replay::OutputCollector;
    use tagstream::rules::StandardRules;
    let dir = tempfile::tempdir().unwrap();
    curfew_recording(dir.path());
    let text = std::fs::read_to_string(dir.path().join("orders.json")).unwrap();
    let orders = tagstream::formats::orders_file::parse_orders(&text)
        .unwrap()
        .accepted;
    let readings = std::fs::read(dir.path().join("readings.jsonl")).unwrap();
    let run = |partitions: usize, until: Option<i64>| {
        let config = PipelineConfig::default();
        let directory = Arc::new(ActivationDirectory::new(&orders.activations));
        let factory = Box::new(StandardRules::new(config, Default::default(), &orders));
        let mut out = OutputCollector::default();
        let mut driver = InlineDriver::new(directory, config, factory, partitions, &mut out);
        tagstream::formats::readings_jsonl::read_batches(readings.as_slice(), |b| {
            driver.feed(&Arc::new(b), &mut out)
        })
        .unwrap();
        match until {
            Some(t_ms) => driver.advance_clock_to(t_ms, &mut out).unwrap(),
            None => assert_eq!(driver.finish(&mut out), Some(t("2026-03-03T07:04:00Z"))),
        }
        (out.alerts.sorted(), driver.dispatch_stats().clock_ms)
    };
    for until in [
        None,
        Some(t("2026-03-03T09:00:00Z")),
        Some(t("2026-03-05T09:00:00Z")),
    ] {
        let one = run(1, until);
        assert!(!one.0.is_empty());
        for partitions in [2, 5] {
            assert_eq!(
                run(partitions, until),
                one,
                "{partitions} partitions, {until:?}"
            );
        }
    }
    // Two days on: two more nights judged on no data, each once.
    let (alerts, clock_ms) = run(3, Some(t("2026-03-05T09:00:00Z")));
    assert_eq!(clock_ms, Some(t("2026-03-05T09:00:00Z")));
    let curfew: Vec<_> = alerts
        .iter()
        .filter(|a| a.alert_type == tagstream::model::AlertType::CurfewViolation)
        .map(|a| (ts(a.start), a.code.clone()))
        .collect();
    assert_eq!(
        curfew,
        vec![
            ("2026-03-02T19:00:00Z".to_string(), Some("AL12".to_string())),
            ("2026-03-03T19:00:00Z".to_string(), Some("AL12".to_string())),
            ("2026-03-04T19:00:00Z".to_string(), Some("AL12".to_string())),
        ]
    );
}

#[test]
fn the_summary_names_conditions_that_could_not_be_monitored() {
    // Not about the end of the input, but about the same summary: a condition that cannot be
    // compiled was only logged, and replay looked like it monitored everything (issue 14,
    // item 7).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orders.json"),
        r#"{"people":[{"id":"P1"}],
  "activations":[{"id":"A1","person":"P1","tag":"T1","from":"2026-03-01T00:00:00Z"}],
  "orders":[{"id":"O1","person":"P1","from":"2026-03-01","conditions":[
    {"type":"exclusion_zone","id":"Z1","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,1]]]}}]}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("readings.jsonl"),
        gps_lines(
            "2026-03-02T18:00:00Z",
            "2026-03-02T18:10:00Z",
            &[("T1", HOME, "2026-03-02T18:10:00Z")],
        ),
    )
    .unwrap();
    let out = replay(dir.path(), "out", &[]);
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let unmonitored = summary["unmonitored_conditions"].as_array().unwrap();
    assert_eq!(unmonitored.len(), 1, "{summary}");
    assert!(
        unmonitored[0].as_str().unwrap().contains("zone 'Z1'"),
        "{summary}"
    );
}

#[test]
fn final_releases_what_the_reorder_window_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    curfew_recording(dir.path());
    // T2's strap opens at its last reading: with a 10-minute reorder window the reading is still
    // held, waiting for anything older, when the input ends.
    let mut lines = std::fs::read_to_string(dir.path().join("readings.jsonl")).unwrap();
    lines
        .push_str(r#"{"kind":"event","tag":"T2","t":"2026-03-03T07:04:30Z","event":"strap_open"}"#);
    lines.push('\n');
    std::fs::write(dir.path().join("readings.jsonl"), lines).unwrap();
    let strap = |name: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec!["--reorder-ms", "600000"];
        args.extend_from_slice(extra);
        alerts(dir.path(), name, &args)
            .into_iter()
            .filter(|a| a.contains("strap"))
            .collect()
    };
    assert!(strap("held", &[]).is_empty());
    assert_eq!(
        strap("final", &["--final"]),
        vec!["A2 strap_tamper - 03-03T07:04..open"]
    );
}
