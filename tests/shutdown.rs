//! An orderly stop (SIGTERM): the topology drains in order under one owner, the trail store is
//! sealed at the log's end, every published alert is stored, the exit status says it all went
//! well, and the next start serves the same alerts.

mod common;

use common::{fixture, fixture_batches, Server, TagClient};
use std::collections::HashMap;
use std::path::Path;
use tagstream::log::LogReader;
use tagstream::store::trails::{TrailConfig, TrailStore};

/// The log's next record number.
fn log_end(data: &Path) -> u64 {
    let mut next = 0;
    for item in LogReader::open(&data.join("log")).unwrap() {
        next = item.unwrap().0 + 1;
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_every_stage_in_order_and_seals_the_trail_store_at_the_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, Some(&fixture("orders.json")), &[]);
    let mut clients: HashMap<String, TagClient> = HashMap::new();
    for batch in fixture_batches() {
        if !clients.contains_key(&batch.tag) {
            let c = TagClient::connect(&server.ingest_addr, &batch.tag).await;
            clients.insert(batch.tag.clone(), c);
        }
        let client = clients.get_mut(&batch.tag).unwrap();
        client.send_acked(batch.seq, batch.readings).await;
    }
    let live = server.settled_alerts();
    assert!(!live.is_empty(), "the fixture raises alerts");

    let (status, lines) = server.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; printed {lines:?}"
    );
    let stopped: serde_json::Value = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "stopped")
        .unwrap_or_else(|| panic!("no stopped line in {lines:?}"));
    assert_eq!(
        stopped["stages"]["drained"],
        serde_json::json!(["alert-book", "trail-feed", "alert-writer"]),
        "{stopped}"
    );
    assert_eq!(stopped["stages"]["timed_out"], serde_json::json!([]));

    // The trail feed sealed the store where the log ends (its last records hold positions):
    // a start after an orderly stop has no trail work left. A process that just exits leaves
    // the store at its last periodic checkpoint.
    let end = log_end(&data);
    let (_, checkpoint) = TrailStore::open(&data.join("trails"), TrailConfig::default()).unwrap();
    assert_eq!(
        checkpoint, end,
        "trail store checkpoint against the log's end"
    );

    let server = Server::start(&data, Some(&fixture("orders.json")), &[]);
    assert_eq!(server.settled_alerts(), live, "alerts after the restart");
}
