//! The topology runs without sockets: `Topology::open` and `start` give the handles the API and
//! the tag listener use (the server only wires sockets around them), the started topology holds
//! the data directory's lock, and a rebuild stops once the stores are built from the log.

use tagstream::config::ServerConfig;
use tagstream::model::{Change, Person};
use tagstream::topology::{Mode, Start, Topology};

fn config_in(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        data_dir: dir.join("data"),
        ..ServerConfig::default()
    }
}

// Multi-threaded: the forwarder applies control records with `block_in_place`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_topology_applies_control_records_and_owns_the_data_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path());
    let topology = Topology::open(&config, Mode::Serve).expect("open");
    let Start::Serving(started) = topology.start(&config).await.expect("start") else {
        panic!("a serving topology stopped as if rebuilt");
    };
    assert_eq!(started.recovered, (0, 0), "an empty log replays nothing");

    // One process owns the stores: another start on the same directory is refused.
    assert!(
        Topology::open(&config, Mode::Serve).is_err(),
        "a second topology opened the data directory while the first runs"
    );

    // An API write goes through the log and is answered once the metadata view has it.
    let person: Person =
        serde_json::from_value(serde_json::json!({"id": "P1", "name": "Pat Example"}))
            .expect("person");
    let record = started
        .control
        .submit("test", None, Change::PutPerson { person })
        .await
        .expect("the person record is applied");
    let stored = started.metadata.person("P1").expect("metadata read");
    assert_eq!(
        stored.map(|p| p.name),
        Some("Pat Example".to_string()),
        "record {record} is not in the metadata view when its submitter is answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_sets_the_stores_aside_and_stops_before_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_in(dir.path());
    let topology = Topology::open(&config, Mode::Rebuild).expect("open for a rebuild");
    let Start::Rebuilt(aside) = topology.start(&config).await.expect("rebuild") else {
        panic!("a rebuild went on to serve");
    };
    assert!(
        aside.backup_dir.is_dir(),
        "the old stores were not set aside in {}",
        aside.backup_dir.display()
    );
    // Stopped: the lock is released, so the server can start on the rebuilt stores.
    Topology::open(&config, Mode::Serve).expect("the data directory is free after a rebuild");
}
