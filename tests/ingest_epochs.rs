//! Batch numbering through the real server: a tag that restarts its numbering in a new session
//! epoch loses nothing (also across a server restart), an older epoch is refused, and a batch
//! numbered at the top of the range is refused instead of blinding the tag.

mod common;

use common::{Server, TagClient};
use std::path::Path;
use tagstream::log::LogReader;
use tagstream::model::{DeviceEvent, Reading, ReadingBody};
use tagstream::wire::{ErrorCode, Frame, MAX_BATCH_SEQ};

/// `n` readings, distinct per (`first_t_s`, index).
fn readings(first_t_s: i64, n: usize) -> Vec<Reading> {
    (0..n)
        .map(|i| Reading {
            t_ms: (1_774_722_600 + first_t_s + i as i64) * 1000,
            battery_pct: Some(70),
            body: ReadingBody::Event(DeviceEvent::StrapClosed),
        })
        .collect()
}

/// `(epoch, seq, readings)` of every batch of `tag` in the server's log, in log order.
fn stored(data: &Path, tag: &str) -> Vec<(u32, u64, usize)> {
    LogReader::open(&data.join("log"))
        .expect("open log")
        .batches()
        .map(|item| item.expect("log record"))
        .filter(|(_, b)| b.tag == tag)
        .map(|(_, b)| (b.epoch, b.seq, b.readings.len()))
        .collect()
}

async fn expect_error(client: &mut TagClient, code: ErrorCode) {
    match client.next_frame().await {
        Some(Frame::Error { code: got, message }) => assert_eq!(got, code, "{message}"),
        other => panic!("expected error {code}, got {other:?}"),
    }
    assert_eq!(client.next_frame().await, None, "closed after the error");
}

#[tokio::test]
async fn a_tag_that_restarts_its_numbering_in_a_new_epoch_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, None, &[]);

    // Before the reset: batches 1..=5 (epoch 0, the hello without the field).
    let mut tag = TagClient::connect(&server.ingest_addr, "T1").await;
    for seq in 1..=5 {
        tag.send_acked(seq, readings(seq as i64 * 10, 2)).await;
    }
    drop(tag);

    // After a factory reset the tag numbers from 1 again, in epoch 1.
    let mut tag = TagClient::connect_in_epoch(&server.ingest_addr, "T1", 1)
        .await
        .expect("hello in a new epoch");
    assert_eq!(tag.last_seq, 0, "nothing stored yet in the new epoch");
    for seq in 1..=3 {
        tag.send_acked(seq, readings(1000 + seq as i64 * 10, 3))
            .await;
    }
    // A re-send within the epoch is still a duplicate.
    tag.send_acked(3, readings(1030, 3)).await;
    drop(tag);

    // The old epoch is refused, at hello.
    let refused = TagClient::connect_in_epoch(&server.ingest_addr, "T1", 0).await;
    match refused {
        Err(Frame::Error {
            code: ErrorCode::StaleEpoch,
            ..
        }) => {}
        Err(other) => panic!("expected stale_epoch, got {other:?}"),
        Ok(_) => panic!("a hello of an older epoch was accepted"),
    }

    // Across a restart: the epoch and its last seq are recovered from the log.
    server.kill9();
    let server = Server::start(&data, None, &[]);
    let mut tag = TagClient::connect_in_epoch(&server.ingest_addr, "T1", 1)
        .await
        .expect("hello after restart");
    assert_eq!(tag.last_seq, 3);
    tag.send_acked(3, readings(1030, 3)).await; // a re-send: acked, not stored again
    tag.send_acked(4, readings(1040, 3)).await;
    drop(tag);
    match TagClient::connect_in_epoch(&server.ingest_addr, "T1", 0).await {
        Err(Frame::Error {
            code: ErrorCode::StaleEpoch,
            ..
        }) => {}
        other => panic!("expected stale_epoch after restart, got {:?}", other.err()),
    }
    // A later reset, straight from a higher epoch.
    let mut tag = TagClient::connect_in_epoch(&server.ingest_addr, "T1", 7)
        .await
        .expect("hello in epoch 7");
    assert_eq!(tag.last_seq, 0);
    tag.send_acked(1, readings(2000, 1)).await;
    drop(tag);

    let mut server = server;
    server.kill9();
    let batches = stored(&data, "T1");
    let expected: Vec<(u32, u64, usize)> = (1..=5)
        .map(|s| (0, s, 2))
        .chain((1..=4).map(|s| (1, s, 3)))
        .chain([(7, 1, 1)])
        .collect();
    assert_eq!(batches, expected, "every reading stored exactly once");
    let readings_stored: usize = batches.iter().map(|b| b.2).sum();
    assert_eq!(readings_stored, 5 * 2 + 4 * 3 + 1);
}

#[tokio::test]
async fn a_batch_numbered_at_the_top_of_the_range_is_refused_and_later_batches_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, None, &[]);
    let mut tag = TagClient::connect(&server.ingest_addr, "T1").await;
    tag.send_acked(1, readings(0, 1)).await;
    tag.send_acked(2, readings(10, 1)).await;
    tag.send(u64::MAX, readings(20, 1)).await;
    expect_error(&mut tag, ErrorCode::SeqTooLarge).await;

    let mut tag = TagClient::connect(&server.ingest_addr, "T1").await;
    assert_eq!(tag.last_seq, 2, "the refused batch was not stored");
    tag.send_acked(3, readings(30, 1)).await;
    // The highest accepted number is still accepted, and the next is refused.
    tag.send_acked(MAX_BATCH_SEQ, readings(40, 1)).await;
    tag.send(MAX_BATCH_SEQ + 1, readings(50, 1)).await;
    expect_error(&mut tag, ErrorCode::SeqTooLarge).await;
    // A tag that reached the top starts a new epoch and keeps uploading.
    let mut tag = TagClient::connect_in_epoch(&server.ingest_addr, "T1", 1)
        .await
        .expect("new epoch");
    tag.send_acked(1, readings(60, 1)).await;
    drop(tag);
    server.kill9();
    assert_eq!(
        stored(&data, "T1"),
        vec![
            (0, 1, 1),
            (0, 2, 1),
            (0, 3, 1),
            (0, MAX_BATCH_SEQ, 1),
            (1, 1, 1)
        ]
    );
}
