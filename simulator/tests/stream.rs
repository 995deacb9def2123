//! Streaming mode against a stand-in server that stores before it acknowledges and restarts
//! part-way (dropping every connection, some acknowledgements lost): every batch ends up stored
//! exactly once, nothing acknowledged is lost, and tags resume after `HelloOk.last_seq`.

mod common;

use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tagsim::stream::{stream, StreamOptions};
use tagstream::wire::{secret_matches, Frame, FrameCodec, PROTOCOL_VERSION};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

const KEY: &[u8] = b"test-tag-key";

#[derive(Default)]
struct Store {
    /// Per tag: highest stored seq and readings stored.
    tags: Mutex<HashMap<String, (u64, u64)>>,
    batches: AtomicU64,
    duplicates: AtomicU64,
    restart_after: AtomicU64,
    restarted: AtomicBool,
}

async fn connection(socket: TcpStream, store: Arc<Store>, restart: Arc<tokio::sync::Notify>) {
    let mut framed = Framed::new(socket, FrameCodec::new());
    let tag = match framed.next().await {
        Some(Ok(Frame::Hello {
            protocol_version,
            tag,
            secret,
            ..
        })) if protocol_version == PROTOCOL_VERSION => {
            if !secret_matches(KEY, &tag, &secret) {
                return;
            }
            tag
        }
        _ => return,
    };
    let last = store
        .tags
        .lock()
        .map(|m| m.get(&tag).map_or(0, |x| x.0))
        .unwrap_or(0);
    if framed
        .send(Frame::HelloOk { last_seq: last })
        .await
        .is_err()
    {
        return;
    }
    while let Some(Ok(frame)) = framed.next().await {
        let Frame::Batch { seq, readings } = frame else {
            return;
        };
        {
            let Ok(mut m) = store.tags.lock() else { return };
            let e = m.entry(tag.clone()).or_default();
            if seq <= e.0 {
                store.duplicates.fetch_add(1, Ordering::Relaxed);
            } else {
                assert_eq!(seq, e.0 + 1, "{tag}: batches must arrive in sequence");
                e.0 = seq;
                e.1 += readings.len() as u64;
                store.batches.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Durable now; crash before acknowledging when the restart point is reached.
        if !store.restarted.load(Ordering::Relaxed)
            && store.batches.load(Ordering::Relaxed) >= store.restart_after.load(Ordering::Relaxed)
        {
            store.restarted.store(true, Ordering::Relaxed);
            restart.notify_one();
            return;
        }
        if framed.send(Frame::Ack { seq }).await.is_err() {
            return;
        }
    }
}

async fn server(addr: std::net::SocketAddr, first: TcpListener, store: Arc<Store>) {
    let restart = Arc::new(tokio::sync::Notify::new());
    let mut listener = first;
    loop {
        // "Crash": every connection and the listener go away for a moment.
        mortal_node(listener, store.clone(), restart.clone()).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        listener = TcpListener::bind(addr).await.expect("rebind");
    }
}

#[test]
fn streaming_survives_a_server_restart_without_losing_acknowledged_batches() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let store = Arc::new(Store::default());
    store.restart_after.store(600, Ordering::Relaxed);
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(server(addr, listener, store.clone()));

    let dir = tempfile::tempdir().expect("tempdir");
    let gen = common::options(dir.path(), 20, 2, 9);
    let opts = StreamOptions {
        connect: addr.to_string(),
        key: KEY.to_vec(),
        speed: 0.0,
        connections: 8,
        window: 4,
        linger_ms: 200,
        drain_timeout_ms: 60_000,
        progress_s: 0,
        epoch: 0,
        protocol: Default::default(),
        device_profile: Default::default(),
    };
    let report = stream(&gen, &opts, Some(dir.path())).expect("stream");
    let stats = &report.stats;
    assert!(
        store.restarted.load(Ordering::Relaxed),
        "the server restarted"
    );
    assert!(stats.dropped_connections.load(Ordering::Relaxed) > 0);
    assert!(
        stats.connect_failures.load(Ordering::Relaxed) > 0
            || stats.connects.load(Ordering::Relaxed) > 20
    );
    // Every batch stored exactly once, readings complete.
    assert_eq!(store.batches.load(Ordering::Relaxed), report.sim.batches);
    let readings: u64 = store.tags.lock().expect("lock").values().map(|x| x.1).sum();
    assert_eq!(readings, report.sim.readings);
    // The batch stored at the crash was never acknowledged: the tag re-sent it, or skipped it after
    // HelloOk.last_seq told it the server had it.
    assert!(
        stats.batches_resent.load(Ordering::Relaxed) + stats.already_stored.load(Ordering::Relaxed)
            >= 1
    );
    assert!(dir.path().join("truth.jsonl").exists() && dir.path().join("orders.json").exists());

    // A second run against the same server finds everything already stored.
    let again = stream(&gen, &opts, None).expect("second stream");
    assert_eq!(
        again.stats.already_stored.load(Ordering::Relaxed),
        report.sim.batches
    );
    assert_eq!(again.stats.batches_sent.load(Ordering::Relaxed), 0);
}

/// A node of a stand-in cluster: serves tags on `listener` into the shared `store` until `death`
/// is notified, then drops every connection and its listener and never comes back (kill -9).
async fn mortal_node(listener: TcpListener, store: Arc<Store>, death: Arc<tokio::sync::Notify>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((socket, _)) = accepted {
                    conns.spawn(connection(socket, store.clone(), death.clone()));
                }
            }
            _ = death.notified() => break,
        }
    }
    conns.abort_all();
}

/// A node that never dies (its connections share the store and the death signal, so the batch
/// that reaches the kill point there is stored and not acknowledged, as on the dying node).
async fn surviving_node(listener: TcpListener, store: Arc<Store>, death: Arc<tokio::sync::Notify>) {
    while let Ok((socket, _)) = listener.accept().await {
        tokio::spawn(connection(socket, store.clone(), death.clone()));
    }
}

#[test]
fn tags_of_a_dead_node_fail_over_to_the_next_address_and_lose_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    // Two nodes on one store (a cluster's shared log); the first dies after 600 batches.
    let store = Arc::new(Store::default());
    store.restart_after.store(600, Ordering::Relaxed);
    let death = Arc::new(tokio::sync::Notify::new());
    let first = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let second = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let connect = format!(
        "{},{}",
        first.local_addr().expect("addr"),
        second.local_addr().expect("addr")
    );
    rt.spawn(mortal_node(first, store.clone(), death.clone()));
    rt.spawn(surviving_node(second, store.clone(), death.clone()));

    let dir = tempfile::tempdir().expect("tempdir");
    let gen = common::options(dir.path(), 20, 2, 9);
    let opts = StreamOptions {
        connect,
        key: KEY.to_vec(),
        speed: 0.0,
        connections: 8,
        window: 4,
        linger_ms: 200,
        drain_timeout_ms: 60_000,
        progress_s: 0,
        epoch: 0,
        protocol: Default::default(),
        device_profile: Default::default(),
    };
    let report = stream(&gen, &opts, None).expect("stream");
    let stats = &report.stats;
    assert!(
        store.restarted.load(Ordering::Relaxed),
        "the first node died"
    );
    // Every batch stored exactly once and acknowledged (or known stored) by the survivor.
    assert_eq!(store.batches.load(Ordering::Relaxed), report.sim.batches);
    let readings: u64 = store.tags.lock().expect("lock").values().map(|x| x.1).sum();
    assert_eq!(readings, report.sim.readings);
    assert_eq!(
        stats.batches_acked.load(Ordering::Relaxed) + stats.already_stored.load(Ordering::Relaxed),
        report.sim.batches
    );
    // The dead node's tags moved on: reconnects, and failovers timed (the first node never came
    // back, so a single-address stream would have given up).
    assert!(stats.reconnects.load(Ordering::Relaxed) > 0);
    let (failovers, p50_ms, max_ms) = stats.failover_summary().expect("failovers measured");
    assert!(failovers > 0 && p50_ms <= max_ms);
    assert!(max_ms < 10_000, "a failover took {max_ms} ms");
    let summary = report.summary();
    assert!(
        summary.contains("failovers (loss to first ack"),
        "{summary}"
    );
}
