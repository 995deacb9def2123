//! The log on NATS JetStream (issue 15, first part), against real NATS servers on loopback
//! (`scripts/nats-setup.sh` installs the binary; `scripts/test.sh` runs it): a batch re-sent is
//! stored once, control records share the order, every record reads back in order with its
//! checksum verified, and with three servers (R3) a server killed with SIGKILL loses nothing
//! acknowledged while appends go on. A record larger than a message (a crime batch can be tens
//! of MiB; NATS takes 1 MiB by default) is kept as an object and reads back whole.

mod common;

use common::nats::{start_cluster, start_nats};
use std::time::{Duration, Instant};
use tagstream::cluster::jetstream::{Appended, JetStreamConfig, JetStreamLog};
use tagstream::cluster::subject::parse_batch_subject;
use tagstream::model::{Batch, ControlRecord, LogEntry, Reading, ReadingBody};

fn config(urls: Vec<String>, replicas: usize) -> JetStreamConfig {
    JetStreamConfig {
        urls,
        stream: "TAGSTREAM".into(),
        subject_prefix: "ts".into(),
        replicas,
        partitions: 16,
        duplicate_window_s: 3_600,
        retain_server_order: false,
        node_id: None,
        lease_ttl_ms: tagstream::cluster::lease::DEFAULT_TTL_MS,
        own_partitions: None,
    }
}

/// Opens the log, retrying while the servers start (and, for a cluster, elect a leader).
async fn open(config: JetStreamConfig) -> JetStreamLog {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match JetStreamLog::open(config.clone()).await {
            Ok(log) => return log,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the stream did not open in 30 s: {e}"),
        }
    }
}

fn batch(tag: &str, seq: u64) -> Batch {
    Batch {
        tag: tag.into(),
        epoch: 0,
        seq,
        arrival_ms: 1_000 + seq as i64,
        readings: vec![Reading {
            t_ms: 1_800_000_000_000 + seq as i64 * 60_000,
            battery_pct: Some(90),
            body: ReadingBody::Rf { in_range: true },
        }],
    }
}

fn control(id: &str) -> ControlRecord {
    serde_json::from_value(serde_json::json!({
        "recorded": "2026-12-06T12:00:00Z", "actor": "test",
        "op": "put_person", "person": {"id": id}
    }))
    .expect("a control record")
}

/// Reads `count` records from record 0 (waiting for them), in order.
async fn read_all(log: &JetStreamLog, count: usize) -> Vec<(u64, LogEntry)> {
    use futures::StreamExt;
    // Right after a server's death the stream's leader may be moving: asking is retried.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut entries = loop {
        match log.read_from(0).await {
            Ok(entries) => break Box::pin(entries),
            Err(e) if Instant::now() > deadline => panic!("reading the stream: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut out = Vec::new();
    while out.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(20), entries.next())
            .await
            .expect("records within 20 s")
            .expect("the stream goes on");
        out.push(next.expect("a record that decodes"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_batch_is_stored_once_and_every_record_reads_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), "n1", None);
    let log = open(config(vec![nats.url.clone()], 1)).await;

    assert_eq!(
        log.append(&batch("T.1*", 1)).await.unwrap(),
        Appended::Stored { record: 0 }
    );
    assert_eq!(log.append_control(&control("P1")).await.unwrap(), 1);
    assert_eq!(
        log.append(&batch("T2", 1)).await.unwrap(),
        Appended::Stored { record: 2 }
    );
    // The tag lost the ack and sends seq 1 again: JetStream drops it.
    assert_eq!(
        log.append(&batch("T.1*", 1)).await.unwrap(),
        Appended::Duplicate { record: 0 }
    );
    assert_eq!(
        log.append(&batch("T.1*", 2)).await.unwrap(),
        Appended::Stored { record: 3 }
    );
    assert_eq!(log.next_record().await.unwrap(), 4);

    let read = read_all(&log, 4).await;
    let summary: Vec<(u64, String)> = read
        .iter()
        .map(|(record, entry)| {
            let what = match entry {
                LogEntry::Batch(b) => format!("{}#{}", b.tag, b.seq),
                LogEntry::Control { record: r, control } => {
                    assert_eq!(r, record);
                    control.change.subject()
                }
            };
            (*record, what)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, "T.1*#1".to_string()),
            (1, "person 'P1'".to_string()),
            (2, "T2#1".to_string()),
            (3, "T.1*#2".to_string()),
        ]
    );
    match &read[0].1 {
        LogEntry::Batch(b) => assert_eq!(**b, batch("T.1*", 1)),
        other => panic!("{other:?}"),
    }
    // The subject names the tag's partition and the tag, encoded.
    let subject = tagstream::cluster::subject::batch_subject(
        "ts",
        tagstream::cluster::partition::partition_of("T.1*", 16),
        "T.1*",
    );
    assert_eq!(
        parse_batch_subject("ts", &subject).unwrap().1,
        "T.1*".to_string()
    );

    // A node configured with other replicas than the stream has is refused, not obeyed.
    let refused = JetStreamLog::open(config(vec![nats.url.clone()], 3)).await;
    assert!(
        matches!(
            refused,
            Err(tagstream::cluster::jetstream::JetStreamError::StreamMismatch { .. })
        ),
        "{:?}",
        refused.err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_servers_a_killed_server_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = start_cluster(dir.path(), 3);
    let urls: Vec<String> = servers
        .iter()
        .map(|s| s.as_ref().unwrap().url.clone())
        .collect();
    let log = open(config(urls, 3)).await;

    let mut acked = Vec::new();
    for seq in 1..=100 {
        let outcome = log.append(&batch("T1", seq)).await.expect("append");
        assert!(matches!(outcome, Appended::Stored { .. }), "{outcome:?}");
        acked.push(seq);
    }
    // One server dies hard; the others keep a quorum.
    drop(servers[1].take());
    for seq in 101..=200 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match log.append(&batch("T1", seq)).await {
                Ok(_) => break,
                // A publish whose ack was lost in the failover is re-sent, as a tag would: the
                // message id keeps it from being stored twice.
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no append within 20 s of the kill: {e}"),
            }
        }
        acked.push(seq);
    }
    // Every acknowledged batch, exactly once, in order.
    let read = read_all(&log, acked.len()).await;
    let seqs: Vec<u64> = read
        .iter()
        .map(|(_, entry)| match entry {
            LogEntry::Batch(b) => b.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, acked);
    let records: Vec<u64> = read.iter().map(|(r, _)| *r).collect();
    assert_eq!(records, (0..acked.len() as u64).collect::<Vec<_>>());
    let deadline = Instant::now() + Duration::from_secs(15);
    let end = loop {
        match log.next_record().await {
            Ok(end) => break end,
            Err(e) if Instant::now() > deadline => panic!("the stream's end: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert_eq!(end, acked.len() as u64);
}

fn big_person(id: &str, name_bytes: usize) -> ControlRecord {
    serde_json::from_value(serde_json::json!({
        "recorded": "2026-12-06T12:00:00Z", "actor": "test",
        "op": "put_person", "person": {"id": id, "name": "N".repeat(name_bytes)}
    }))
    .expect("a control record")
}

fn long_batch(tag: &str, seq: u64, readings: usize) -> Batch {
    let mut b = batch(tag, seq);
    b.readings = (0..readings as i64)
        .map(|i| Reading {
            t_ms: 1_800_000_000_000 + i * 1_000,
            battery_pct: Some(80),
            body: ReadingBody::Rf {
                in_range: i % 2 == 0,
            },
        })
        .collect();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_larger_than_a_message_is_kept_as_an_object_and_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), "n1", None);
    let log = open(config(vec![nats.url.clone()], 1)).await;
    // The server's own limit (1 MiB by default): a 2.5 MiB control record, as a large crime
    // batch would be, is refused as one message.
    assert!(log.inline_bytes() < 1 << 20, "{}", log.inline_bytes());
    let big = big_person("P-big", 5 << 19);
    assert_eq!(log.append_control(&big).await.expect("a large record"), 0);
    assert_eq!(log.append_control(&control("P2")).await.unwrap(), 1);

    // A tag's batch kept as an object, and re-sent (a lost ack): stored once, whole.
    let small = log.clone().with_inline_bytes(4 * 1024);
    let long = long_batch("T9", 1, 2_000);
    assert_eq!(
        small.append(&long).await.unwrap(),
        Appended::Stored { record: 2 }
    );
    assert_eq!(
        small.append(&long).await.unwrap(),
        Appended::Duplicate { record: 2 }
    );
    assert_eq!(
        log.append(&batch("T9", 2)).await.unwrap(),
        Appended::Stored { record: 3 }
    );
    // One position per record: the numbering has nothing in between.
    assert_eq!(log.next_record().await.unwrap(), 4);

    let read = read_all(&log, 4).await;
    let numbers: Vec<u64> = read.iter().map(|(r, _)| *r).collect();
    assert_eq!(numbers, vec![0, 1, 2, 3]);
    match &read[0].1 {
        LogEntry::Control { control, .. } => assert_eq!(**control, big, "read back whole"),
        other => panic!("{other:?}"),
    }
    match &read[2].1 {
        LogEntry::Batch(b) => assert_eq!(**b, long, "read back whole"),
        other => panic!("{other:?}"),
    }
    // A reader that starts at a record kept as an object gets it whole too.
    use futures::StreamExt;
    let mut from_long = Box::pin(log.read_from(2).await.unwrap());
    match from_long.next().await.unwrap().unwrap() {
        (2, LogEntry::Batch(b)) => assert_eq!(*b, long),
        other => panic!("{other:?}"),
    }
}

/// Every record of `log` now, with `read_until`: (record, entry or the error's text).
async fn read_now(log: &JetStreamLog) -> Vec<(u64, Result<LogEntry, String>)> {
    use futures::StreamExt;
    let end = log.next_record().await.unwrap();
    let mut records = Box::pin(log.read_until(0, end).await.unwrap());
    let mut out = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(20), records.next())
        .await
        .expect("a bounded read ends")
    {
        out.push(match item {
            Ok((record, entry)) => (record, Ok(entry)),
            Err(e) => (out.len() as u64, Err(e.to_string())),
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_replaces_records_in_place_and_a_gap_without_replacement_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let nats = start_nats(dir.path(), "n1", None);
    let log = open(config(vec![nats.url.clone()], 1)).await;
    // T1: a batch kept as an object (its readings a second apart from batch 2's time on), then
    // two ordinary ones; P1's record; T2 last, so that the stream's last messages are ones
    // compaction deletes.
    let small = log.clone().with_inline_bytes(4 * 1024);
    small.append(&long_batch("T1", 1, 2_000)).await.unwrap();
    log.append(&batch("T1", 2)).await.unwrap();
    log.append(&batch("T1", 3)).await.unwrap();
    log.append_control(&control("P1")).await.unwrap();
    log.append(&batch("T2", 1)).await.unwrap();
    log.append(&batch("T2", 2)).await.unwrap();
    assert_eq!(log.next_record().await.unwrap(), 6);

    // T1's readings from batch 2's time on, P1's records and all of T2.
    let mut windows = tagstream::log::TagWindows::default();
    windows.add("T1", batch("T1", 2).readings[0].t_ms, i64::MAX);
    windows.add("T2", i64::MIN, i64::MAX);
    windows.add_person("P1");
    let report = log.compact(&windows).await.expect("compaction");
    assert_eq!(
        (
            report.records_scanned,
            report.readings_removed,
            report.records_emptied,
            report.controls_redacted
        ),
        (6, 1_880 + 4, 4, 1),
        "{report:?}"
    );
    // Again: nothing more to remove, nothing breaks (a run repeated after a crash).
    let again = log.compact(&windows).await.expect("compaction again");
    assert_eq!((again.records_scanned, again.readings_removed), (6, 0));

    // The originals are gone from the stream (every record lost something); every record reads
    // back in place from its replacement, with no message after them.
    assert_eq!(log.describe().await.unwrap().messages, 0);
    {
        use futures::StreamExt;
        let objects = log
            .context()
            .get_object_store("TAGSTREAM_RECORDS")
            .await
            .unwrap();
        let mut names: Vec<String> = objects
            .list()
            .await
            .unwrap()
            .map(|info| info.unwrap().name)
            .collect()
            .await;
        names.sort();
        let replaced: Vec<String> = (1..=6).map(|s| format!("replaced-{s:020}")).collect();
        assert_eq!(
            names, replaced,
            "the batch's own object went with its message"
        );
    }
    let read = read_now(&log).await;
    let numbers: Vec<u64> = read.iter().map(|(r, _)| *r).collect();
    assert_eq!(numbers, vec![0, 1, 2, 3, 4, 5]);
    let readings = |i: usize| match &read[i].1 {
        Ok(LogEntry::Batch(b)) => (b.tag.clone(), b.seq, b.readings.len()),
        other => panic!("record {i}: {other:?}"),
    };
    assert_eq!(
        readings(0),
        ("T1".into(), 1, 120),
        "what was before the window"
    );
    assert_eq!(readings(1), ("T1".into(), 2, 0));
    assert_eq!(readings(2), ("T1".into(), 3, 0));
    assert_eq!(readings(4), ("T2".into(), 1, 0));
    assert_eq!(readings(5), ("T2".into(), 2, 0));
    match &read[3].1 {
        Ok(LogEntry::Control { control, .. }) => assert_eq!(control.change.op(), "redacted"),
        other => panic!("{other:?}"),
    }

    // A message deleted with no replacement kept is damage, named by its sequence.
    let stream = log.context().get_stream("TAGSTREAM").await.unwrap();
    let seventh = log.append(&batch("T3", 1)).await.unwrap();
    assert_eq!(seventh, Appended::Stored { record: 6 });
    log.append(&batch("T3", 2)).await.unwrap();
    stream.delete_message(7).await.unwrap();
    let read = read_now(&log).await;
    assert_eq!(read.len(), 8);
    let error = read[6].1.as_ref().expect_err("a lost record");
    assert!(
        error.contains("sequence 7") && error.contains("not in the stream"),
        "{error}"
    );
    assert!(read[7].1.is_ok(), "the record after the gap is read");
}
