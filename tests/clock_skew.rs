//! The event-time clock against tags with wrong clocks (issue 13, items 1 and 2), over the real
//! server and through the pipeline: a reading far in the future or a day ahead raises a
//! `device_clock` alert for its activation and nothing else; one tag cannot move anyone else's
//! clock (restart and replay give the same bytes); a reading ahead is processed once the clock
//! catches up; a store-and-forward backlog is still late data; every tag going quiet raises the
//! "ingest silent" system alert.

mod common;

use common::{Server, TagClient};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use tagstream::formats::orders_file::parse_orders;
use tagstream::model::time::{format_time, parse_time};
use tagstream::model::{Alert, Batch, DeviceEvent, Reading, ReadingBody};
use tagstream::pipeline::driver::InlineDriver;
use tagstream::pipeline::{ActivationDirectory, PipelineConfig};
use tagstream::replay::OutputCollector;
use tagstream::rules::StandardRules;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const HOME: (f64, f64) = (51.4545, -2.5879);
/// About 1.1 km north of home.
const TOWN: (f64, f64) = (51.4645, -2.5879);

fn now_ms() -> i64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    ms - ms % MIN
}

fn fix(t_ms: i64, at: (f64, f64)) -> Reading {
    common::gps_fix_at(t_ms, at)
}

fn event(t_ms: i64, e: DeviceEvent) -> Reading {
    Reading {
        t_ms,
        battery_pct: None,
        body: ReadingBody::Event(e),
    }
}

/// Home fixes every 5 minutes from the activation's start (`now − 40 min`) to `now`.
fn home_until(now: i64) -> Vec<Reading> {
    (0..=8)
        .map(|k| fix(now - 40 * MIN + k * 5 * MIN, HOME))
        .collect()
}

/// `n` people, each with a tag `T{i}` active since `now − 40 min` and a curfew at home every
/// day from `now + 2 h` to `now + 8 h` (UK local time; at most an hour earlier in summer time,
/// still in the future), for 200 days.
fn orders_doc(n: usize, now: i64) -> String {
    let hhmm = |t: i64| format_time(t)[11..16].to_string();
    let date = |t: i64| format_time(t)[..10].to_string();
    let curfew = format!(
        r#"{{"type":"curfew","grace_min":5,
   "addresses":[{{"id":"home","lat":{},"lon":{},"radius_m":50}}],
   "timetable":[{{"days":["mon","tue","wed","thu","fri","sat","sun"],"start":"{}","end":"{}","address":"home"}}]}}"#,
        HOME.0,
        HOME.1,
        hhmm(now + 2 * HOUR),
        hhmm(now + 8 * HOUR)
    );
    let (mut people, mut activations, mut orders) = (vec![], vec![], vec![]);
    for i in 1..=n {
        people.push(format!(r#"{{"id":"P{i}"}}"#));
        activations.push(format!(
            r#"{{"id":"A{i}","person":"P{i}","tag":"T{i}","from":"{}"}}"#,
            format_time(now - 40 * MIN)
        ));
        orders.push(format!(
            r#"{{"id":"O{i}","person":"P{i}","from":"{}","to":"{}","conditions":[{curfew}]}}"#,
            date(now - 24 * HOUR),
            date(now + 200 * 24 * HOUR)
        ));
    }
    let doc = format!(
        r#"{{"people":[{}],"activations":[{}],"orders":[{}]}}"#,
        people.join(","),
        activations.join(","),
        orders.join(",")
    );
    let load = parse_orders(&doc).expect("orders document");
    assert!(load.errors.is_empty(), "{:?}", load.errors);
    doc
}

fn alerts_of(jsonl: &str) -> Vec<serde_json::Value> {
    jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert line"))
        .collect()
}

fn of_type<'a>(alerts: &'a [serde_json::Value], t: &str) -> Vec<&'a serde_json::Value> {
    alerts.iter().filter(|a| a["type"] == t).collect()
}

/// Waits until the server's alerts include at least `n` lines, then until they settle.
fn alerts_when(server: &Server, n: usize) -> String {
    for _ in 0..200 {
        let now = server.settled_alerts();
        if now.lines().count() >= n {
            return now;
        }
    }
    panic!("fewer than {n} alerts");
}

fn replay_data_dir(data: &Path, out: &Path) -> String {
    common::replay_alerts_with(None, data, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_in_2100_or_a_day_ahead_raises_device_clock_not_curfew_breaches() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let orders = dir.path().join("orders.json");
    std::fs::write(&orders, orders_doc(2, now)).unwrap();
    let server = Server::start(&dir.path().join("data"), Some(&orders), &[]);
    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    let mut t2 = TagClient::connect(&server.ingest_addr, "T2").await;
    t1.send_acked(1, home_until(now)).await;
    t2.send_acked(1, home_until(now)).await;
    // T1's clock says 2100 (away from home); T2's says 25 hours from now, in tomorrow's curfew.
    let y2100 = parse_time("2100-01-01T00:00:00Z").unwrap();
    t1.send_acked(2, vec![fix(y2100, TOWN)]).await;
    t2.send_acked(2, vec![fix(now + 25 * HOUR, TOWN)]).await;
    let live = alerts_when(&server, 2);
    let alerts = alerts_of(&live);
    assert!(of_type(&alerts, "curfew_violation").is_empty(), "{live}");
    let clocks = of_type(&alerts, "device_clock");
    assert_eq!(clocks.len(), 2, "{live}");
    assert_eq!(clocks[0]["activation"], "A1");
    assert_eq!(clocks[1]["activation"], "A2");
    assert!(clocks.iter().all(|a| a["end"].is_null()));
    assert_eq!(alerts.len(), 2, "nothing else: {live}");

    // The tags' clocks are right again: the episodes end, still no breach.
    t1.send_acked(3, vec![fix(now + MIN, HOME)]).await;
    t2.send_acked(3, vec![fix(now + MIN, HOME)]).await;
    let mut live = server.settled_alerts();
    for _ in 0..50 {
        if alerts_of(&live).iter().all(|a| !a["end"].is_null()) {
            break;
        }
        live = server.settled_alerts();
    }
    let alerts = alerts_of(&live);
    assert_eq!(alerts.len(), 2, "{live}");
    assert!(
        alerts
            .iter()
            .all(|a| a["type"] == "device_clock" && !a["end"].is_null()),
        "{live}"
    );
    let metrics = server.get("/metrics").unwrap();
    assert!(
        metrics.contains("tagstream_clock_ahead_readings_total 2\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tag_23_hours_ahead_moves_no_one_elses_clock_and_restart_and_replay_agree() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = now_ms();
    let orders = dir.path().join("orders.json");
    std::fs::write(&orders, orders_doc(50, now)).unwrap();
    let mut server = Server::start(&data, Some(&orders), &[]);
    for i in 1..=50 {
        let mut tag = TagClient::connect(&server.ingest_addr, &format!("T{i}")).await;
        tag.send_acked(1, home_until(now)).await;
    }
    let mut t7 = TagClient::connect(&server.ingest_addr, "T7").await;
    t7.send_acked(2, vec![fix(now + 23 * HOUR, TOWN)]).await;
    let live = alerts_when(&server, 1);
    let alerts = alerts_of(&live);
    assert!(of_type(&alerts, "no_contact").is_empty(), "{live}");
    assert!(of_type(&alerts, "curfew_violation").is_empty(), "{live}");
    assert_eq!(alerts.len(), 1, "{live}");
    assert_eq!(alerts[0]["type"], "device_clock");
    assert_eq!(alerts[0]["activation"], "A7");

    // Restart: the log is replayed at start-up and gives exactly the same alerts; so does
    // `tagstream replay` of the data directory.
    server.kill9();
    let server = Server::start(&data, None, &[]);
    let again = server.settled_alerts();
    assert_eq!(live, again, "restart changed the alerts");
    drop(server);
    let replayed = replay_data_dir(&data, &dir.path().join("out"));
    assert_eq!(live, replayed, "live and replay of the server's log differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tag_going_quiet_raises_the_ingest_silent_system_alert() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let orders = dir.path().join("orders.json");
    std::fs::write(&orders, orders_doc(1, now)).unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        "[watchdog]\ningest_silent_ms = 1500\ncheck_every_ms = 50\n",
    )
    .unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        Some(&orders),
        &["--config", config.to_str().unwrap()],
    );
    let mut t1 = TagClient::connect(&server.ingest_addr, "T1").await;
    t1.send_acked(1, home_until(now)).await;
    let system = || -> serde_json::Value {
        serde_json::from_str(&server.get("/v1/system/alerts").unwrap()).unwrap()
    };
    assert_eq!(system()["alerts"].as_array().unwrap().len(), 0);

    // Every tag is quiet now.
    let mut raised = serde_json::Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        raised = system();
        if !raised["alerts"].as_array().unwrap().is_empty() {
            break;
        }
    }
    let list = raised["alerts"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{raised}");
    assert_eq!(list[0]["type"], "ingest_silent");
    assert!(list[0]["end"].is_null());
    assert!(server
        .get("/metrics")
        .unwrap()
        .contains("tagstream_ingest_silent 1\n"));
    // Not a rule output: the person alerts do not have it.
    assert!(!server.get("/v1/alerts/export").unwrap().contains("ingest"));

    // The alert SSE stream carries it as its own event type.
    let http = server.http_addr.clone();
    let sse = tokio::task::spawn_blocking(move || {
        let resp = ureq::get(&format!("http://{http}/v1/alerts/stream"))
            .set("Authorization", &format!("Bearer {}", common::ADMIN_TOKEN))
            .set("X-Purpose", "integration test")
            .call()
            .unwrap();
        let mut lines = BufReader::new(resp.into_reader()).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref().take(20) {
            let line = line.unwrap();
            if line.starts_with("data:")
                && seen
                    .last()
                    .is_some_and(|l: &String| l == "event: system_alert")
            {
                return (seen, line);
            }
            seen.push(line);
        }
        panic!("no system_alert event: {seen:?}");
    })
    .await
    .unwrap();
    assert!(sse.1.contains("ingest_silent"), "{sse:?}");

    // A tag speaks again: the system alert ends.
    t1.send_acked(2, vec![fix(now + MIN, HOME)]).await;
    let mut ended = serde_json::Value::Null;
    for _ in 0..50 {
        ended = system();
        if !ended["alerts"][0]["end"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!ended["alerts"][0]["end"].is_null(), "{ended}");
}

// ---- through the pipeline (InlineDriver), with recorded arrival times ----

fn run(
    activations: usize,
    config: PipelineConfig,
    batches: &[(String, i64, Vec<Reading>)],
) -> (Vec<Alert>, tagstream::pipeline::DispatchStats) {
    run_on(2, activations, config, batches)
}

fn run_on(
    partitions: usize,
    activations: usize,
    config: PipelineConfig,
    batches: &[(String, i64, Vec<Reading>)],
) -> (Vec<Alert>, tagstream::pipeline::DispatchStats) {
    let doc = orders_doc(activations, parse_time("2026-03-02T00:40:00Z").unwrap());
    let orders = parse_orders(&doc).unwrap().accepted;
    let directory = Arc::new(ActivationDirectory::new(&orders.activations));
    let factory = Box::new(StandardRules::new(config, Default::default(), &orders));
    let mut out = OutputCollector::default();
    let mut driver = InlineDriver::new(directory, config, factory, partitions, &mut out);
    for (seq, (tag, arrival_ms, readings)) in batches.iter().enumerate() {
        let batch = Batch {
            tag: tag.clone(),
            seq: seq as u64 + 1,
            epoch: 0,
            arrival_ms: *arrival_ms,
            readings: readings.clone(),
        };
        driver.feed(&Arc::new(batch), &mut out);
    }
    (out.alerts.sorted(), driver.dispatch_stats())
}

fn summary(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| {
            format!(
                "{} {} {}..{} late={}",
                a.activation,
                a.alert_type.as_str(),
                &format_time(a.start)[5..16],
                a.end
                    .map_or("open".into(), |e| format_time(e)[5..16].to_string()),
                a.late
            )
        })
        .collect()
}

/// Five tags reporting every 10 minutes from `from` for `steps` steps (arrival 10 min later).
fn steady(from: i64, steps: i64, skip: &str) -> Vec<(String, i64, Vec<Reading>)> {
    let mut out = vec![];
    for k in 0..steps {
        let t = from + k * 10 * MIN;
        for i in 1..=5 {
            let tag = format!("T{i}");
            if tag != skip {
                out.push((tag, t + 10 * MIN, vec![fix(t, HOME)]));
            }
        }
    }
    out
}

#[test]
fn a_reading_ahead_is_held_and_processed_normally_once_the_clock_catches_up() {
    let config = PipelineConfig {
        no_contact_ms: 30 * 24 * HOUR,
        ..PipelineConfig::default()
    };
    let start = parse_time("2026-03-02T00:00:00Z").unwrap();
    let mut batches = steady(start, 3, "");
    // T1's strap opens "5 hours from now": ahead of the clock (00:20) by more than 2 h.
    let open_at = start + 5 * HOUR;
    batches.push((
        "T1".into(),
        start + 30 * MIN,
        vec![event(open_at, DeviceEvent::StrapOpen)],
    ));
    let (before, stats) = run(5, config, &batches);
    assert_eq!(stats.clock_ahead, 1);
    assert_eq!(
        summary(&before),
        vec!["A1 device_clock 03-02T00:20..open late=false"],
        "held out of the rules"
    );
    // The clock reaches 03:00 (= 05:00 − max skew): the held reading goes to the rules as any
    // other would have, and T1's next in-bound readings end the device-clock episode.
    batches.extend(steady(start + 30 * MIN, 16, ""));
    let (after, _) = run(5, config, &batches);
    assert_eq!(
        summary(&after),
        vec![
            "A1 device_clock 03-02T00:20..03-02T00:30 late=false",
            "A1 strap_tamper 03-02T05:00..open late=false",
        ]
    );
}

#[test]
fn a_two_day_store_and_forward_backlog_is_processed_as_late_data() {
    let config = PipelineConfig::default();
    let start = parse_time("2026-03-02T00:00:00Z").unwrap();
    // T1 loses signal at 00:50; the others keep reporting for two days.
    let mut batches = steady(start, 5, "");
    batches.extend(steady(start + 50 * MIN, 6 * 48, "T1"));
    // Then T1 uploads what it stored: two days of fixes, and a strap opening and closing.
    let back = start + 50 * MIN + 6 * 48 * 10 * MIN;
    let mut backlog: Vec<Reading> = (0..48 * 6)
        .map(|k| fix(start + 50 * MIN + k * 10 * MIN, HOME))
        .collect();
    backlog.push(event(start + 26 * HOUR, DeviceEvent::StrapOpen));
    backlog.push(event(start + 26 * HOUR + 5 * MIN, DeviceEvent::StrapClosed));
    backlog.sort_by_key(|r| r.t_ms);
    batches.push(("T1".into(), back + 10 * MIN, backlog));
    let (alerts, stats) = run(5, config, &batches);
    assert_eq!((stats.clock_ahead, stats.too_old), (0, 0), "{stats:?}");
    let a1: Vec<String> = summary(&alerts)
        .into_iter()
        .filter(|s| s.starts_with("A1 no_contact") || s.starts_with("A1 strap"))
        .collect();
    assert_eq!(
        a1,
        vec![
            // Silent from its last contact until the backlog arrived (contact is now).
            format!(
                "A1 no_contact 03-02T00:40..{} late=false",
                &format_time(back - 10 * MIN)[5..16]
            ),
            "A1 strap_tamper 03-03T02:00..03-03T02:05 late=false".to_string(),
        ]
    );
}

#[test]
fn the_clock_and_its_flags_do_not_depend_on_the_number_of_partitions() {
    let config = PipelineConfig::default();
    let start = parse_time("2026-03-02T00:00:00Z").unwrap();
    let mut batches = steady(start, 3, "");
    batches.push((
        "T1".into(),
        start + 30 * MIN,
        vec![event(start + 5 * HOUR, DeviceEvent::StrapOpen)],
    ));
    // Before T2's activation (it starts at 00:00): stored, counted, not ruled on.
    batches.push((
        "T2".into(),
        start + 30 * MIN,
        vec![event(start - HOUR, DeviceEvent::StrapOpen)],
    ));
    batches.extend(steady(start + 30 * MIN, 20, "T3"));
    let (one, stats) = run_on(1, 5, config, &batches);
    assert_eq!(
        (stats.clock_ahead, stats.before_activation),
        (1, 1),
        "{stats:?}"
    );
    assert!(summary(&one).contains(&"A1 strap_tamper 03-02T05:00..open late=false".to_string()));
    assert!(summary(&one).iter().any(|s| s.starts_with("A3 no_contact")));
    assert!(!summary(&one).iter().any(|s| s.starts_with("A2 strap")));
    for partitions in [2, 3, 7] {
        let (other, _) = run_on(partitions, 5, config, &batches);
        assert_eq!(one, other, "{partitions} partitions");
    }
}
