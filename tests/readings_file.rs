//! Tests of the native binary readings file (`src/wire/readings_file.rs`): round trips, one
//! hello per change of tag, and errors that name the byte offset.

mod common;

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use tagstream::model::{DeviceEvent, Position, PositionSource, Reading, ReadingBody};
use tagstream::wire::{
    encode_frame, ErrorCode, Frame, FrameType, ReadingsFileError, ReadingsFileReader,
    ReadingsFileWriter, WireError, READINGS_FILE_MAGIC,
};

fn reading(t_ms: i64, i: u32) -> Reading {
    if i.is_multiple_of(3) {
        Reading {
            t_ms,
            battery_pct: Some((i % 101) as u8),
            body: ReadingBody::Event(DeviceEvent::ALL[i as usize % DeviceEvent::ALL.len()]),
        }
    } else {
        Reading {
            t_ms,
            battery_pct: None,
            body: ReadingBody::Position(Position {
                lat_e7: 514_545_000 + i as i32,
                lon_e7: -25_879_000,
                precision_cm: 500 + i,
                source: PositionSource::Gps,
                speed_ckmh: None,
                heading_cdeg: Some((i % 36_000) as u16),
                satellites: Some(7),
            }),
        }
    }
}

type Batch = (String, u64, Vec<Reading>);

fn sample_batches() -> Vec<Batch> {
    let mut batches = Vec::new();
    for (k, tag) in ["T1", "T1", "T2", "T1", "tag-é"].iter().enumerate() {
        let readings = (0..(k as u32 * 7 + 1))
            .map(|i| reading(1_774_722_600_000 + i64::from(i) * 1000, i))
            .collect();
        batches.push((tag.to_string(), k as u64 + 1, readings));
    }
    batches
}

fn write_file(batches: &[Batch]) -> Vec<u8> {
    let mut writer = ReadingsFileWriter::new(Vec::new()).expect("magic");
    for (tag, seq, readings) in batches {
        writer
            .write_batch(tag, *seq, readings)
            .expect("valid batch");
    }
    writer.finish().expect("flush")
}

fn read_all(bytes: &[u8]) -> Result<Vec<Batch>, ReadingsFileError> {
    ReadingsFileReader::new(bytes)?.collect()
}

/// The frames after the magic, in order.
fn frames_of(bytes: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(&bytes[READINGS_FILE_MAGIC.len()..]);
    let mut frames = Vec::new();
    while let Some(frame) = tagstream::wire::decode_frame(&mut buf, 1 << 20).expect("valid") {
        frames.push(frame);
    }
    frames
}

#[test]
fn batches_round_trip_with_one_hello_per_change_of_tag() {
    let batches = sample_batches();
    let bytes = write_file(&batches);
    assert_eq!(&bytes[..8], b"TAGSRDG1");
    assert_eq!(read_all(&bytes).expect("valid file"), batches);

    let hellos: Vec<String> = frames_of(&bytes)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Hello { tag, secret, .. } => {
                assert_eq!(secret, "");
                Some(tag)
            }
            _ => None,
        })
        .collect();
    assert_eq!(hellos, ["T1", "T2", "T1", "tag-é"]);
}

#[test]
fn an_empty_file_has_no_batches() {
    let bytes = write_file(&[]);
    assert_eq!(bytes, READINGS_FILE_MAGIC);
    assert_eq!(read_all(&bytes).expect("valid"), vec![]);
}

#[test]
fn files_round_trip_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("readings.bin");
    let batches = sample_batches();
    let mut writer = ReadingsFileWriter::create(&path).expect("create");
    for (tag, seq, readings) in &batches {
        writer.write_batch(tag, *seq, readings).expect("write");
    }
    let written = writer.bytes_written();
    writer.finish().expect("flush");
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), written);
    let reader = ReadingsFileReader::open(&path).expect("open");
    let back: Vec<Batch> = reader.collect::<Result<_, _>>().expect("valid");
    assert_eq!(back, batches);
}

#[test]
fn a_truncated_file_names_the_offset_of_the_cut_frame() {
    let batches = sample_batches();
    let bytes = write_file(&batches);
    let last_frame_offset = {
        // Offset of the last frame: walk the length prefixes.
        let mut at = 8;
        let mut last = at;
        while at < bytes.len() {
            last = at;
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
            at += 4 + len;
        }
        last
    };
    let cut = &bytes[..bytes.len() - 1];
    let mut reader = ReadingsFileReader::new(cut).expect("magic");
    for expected in &batches[..batches.len() - 1] {
        assert_eq!(&reader.next().expect("item").expect("valid"), expected);
    }
    let err = reader.next().expect("an error").expect_err("truncated");
    assert!(
        matches!(
            err,
            ReadingsFileError::Truncated { offset, what: "frame", .. } if offset == last_frame_offset as u64
        ),
        "{err}"
    );
    assert_eq!(err.offset(), last_frame_offset as u64);
    assert!(
        err.to_string()
            .starts_with(&format!("byte {last_frame_offset}: file ends")),
        "{err}"
    );
    assert!(reader.next().is_none(), "the reader stops after an error");

    // Cut inside a length prefix.
    let cut = &bytes[..last_frame_offset + 2];
    let err = read_all(cut).expect_err("truncated");
    assert!(matches!(
        err,
        ReadingsFileError::Truncated {
            what: "length prefix",
            available_bytes: 2,
            ..
        }
    ));
    assert_eq!(err.offset(), last_frame_offset as u64);

    // Cut inside the magic.
    let err = read_all(&bytes[..5]).expect_err("truncated");
    assert!(matches!(
        err,
        ReadingsFileError::Truncated {
            offset: 0,
            what: "magic",
            ..
        }
    ));
}

#[test]
fn other_bad_files_are_named() {
    let err = read_all(b"NOTAFILE").expect_err("bad magic");
    assert!(matches!(err, ReadingsFileError::BadMagic { .. }));

    let batch = Frame::Batch {
        seq: 1,
        readings: vec![reading(0, 1)],
    };
    let mut file = BytesMut::from(&READINGS_FILE_MAGIC[..]);
    encode_frame(&batch, &mut file);
    let err = read_all(&file).expect_err("no hello");
    assert!(matches!(
        err,
        ReadingsFileError::BatchBeforeHello { offset: 8 }
    ));

    let mut file = BytesMut::from(&READINGS_FILE_MAGIC[..]);
    encode_frame(&Frame::hello("T1", ""), &mut file);
    let ack_offset = file.len() as u64;
    encode_frame(&Frame::Ack { seq: 1 }, &mut file);
    let err = read_all(&file).expect_err("ack in a file");
    assert!(matches!(
        err,
        ReadingsFileError::UnexpectedFrame { offset, frame: FrameType::Ack } if offset == ack_offset
    ));

    let mut file = BytesMut::from(&READINGS_FILE_MAGIC[..]);
    encode_frame(
        &Frame::Hello {
            protocol_version: 2,
            tag: "T1".into(),
            secret: String::new(),
            epoch: 0,
        },
        &mut file,
    );
    let err = read_all(&file).expect_err("version 2");
    assert!(matches!(
        err,
        ReadingsFileError::UnsupportedVersion {
            offset: 8,
            got: 2,
            ..
        }
    ));

    // A bad record inside a batch: the frame's offset and the record's index.
    let mut file = BytesMut::from(&READINGS_FILE_MAGIC[..]);
    encode_frame(&Frame::hello("T1", ""), &mut file);
    let batch_offset = file.len();
    encode_frame(&batch, &mut file);
    file[batch_offset + 4 + 1 + 12 + 8] = 77; // kind byte of record 0
    let err = read_all(&file).expect_err("bad record");
    match &err {
        ReadingsFileError::Frame { offset, error } => {
            assert_eq!(*offset, batch_offset as u64);
            assert_eq!(error.code(), ErrorCode::BadRecord);
        }
        other => panic!("unexpected {other}"),
    }
    assert_eq!(
        err.to_string(),
        format!("byte {batch_offset}: record 0: unknown reading kind 77")
    );

    // An oversize length is refused from the prefix.
    let mut file = BytesMut::from(&READINGS_FILE_MAGIC[..]);
    file.put_u32_le(u32::MAX);
    let err = read_all(&file).expect_err("too large");
    assert!(matches!(
        err,
        ReadingsFileError::Frame {
            offset: 8,
            error: WireError::FrameTooLarge { .. }
        }
    ));
}

#[test]
fn invalid_batches_are_refused_and_nothing_is_written() {
    let mut writer = ReadingsFileWriter::new(Vec::new()).expect("magic");
    writer
        .write_batch("T1", 1, &[reading(0, 1)])
        .expect("valid");
    let before = writer.bytes_written();
    let err = writer
        .write_batch("T2", 0, &[reading(0, 1)])
        .expect_err("seq 0");
    assert!(matches!(
        err,
        ReadingsFileError::Frame {
            error: WireError::SeqZero,
            ..
        }
    ));
    let err = writer
        .write_batch("", 2, &[reading(0, 1)])
        .expect_err("empty tag");
    assert!(matches!(
        err,
        ReadingsFileError::Frame {
            error: WireError::EmptyTag,
            ..
        }
    ));
    let err = writer.write_batch("T1", 2, &[]).expect_err("empty batch");
    assert!(matches!(
        err,
        ReadingsFileError::Frame {
            error: WireError::EmptyBatch,
            ..
        }
    ));
    assert_eq!(writer.bytes_written(), before);
    // The refused T2 batch did not change the current tag: T2 still gets its hello.
    writer
        .write_batch("T2", 1, &[reading(0, 2)])
        .expect("valid");
    let bytes = writer.finish().expect("flush");
    assert_eq!(
        read_all(&bytes).expect("valid"),
        vec![
            ("T1".to_string(), 1, vec![reading(0, 1)]),
            ("T2".to_string(), 1, vec![reading(0, 2)]),
        ]
    );
}

proptest! {
    #[test]
    fn arbitrary_batch_sequences_round_trip(
        spec in prop::collection::vec((0usize..3, 1u64..1000, 1u32..20), 0..12)
    ) {
        let tags = ["A", "B", "C"];
        let batches: Vec<Batch> = spec
            .iter()
            .map(|&(t, seq, n)| {
                let readings = (0..n).map(|i| reading(i64::from(i) * 7, i + t as u32)).collect();
                (tags[t].to_string(), seq, readings)
            })
            .collect();
        let bytes = write_file(&batches);
        prop_assert_eq!(read_all(&bytes).ok(), Some(batches));
    }

    /// Any prefix of a valid file reads its whole batches and then, if cut inside a frame, a
    /// truncation error at that frame's offset; never a panic.
    #[test]
    fn every_prefix_reads_cleanly_or_names_the_cut(keep in any::<prop::sample::Index>()) {
        let bytes = write_file(&sample_batches());
        let keep = keep.index(bytes.len() + 1);
        let mut results = match ReadingsFileReader::new(&bytes[..keep]) {
            Ok(reader) => reader.collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        };
        if let Some(Err(e)) = results.pop() {
            prop_assert!(matches!(e, ReadingsFileError::Truncated { .. }), "{}", e);
            prop_assert!(e.offset() <= keep as u64);
        }
        prop_assert!(results.iter().all(|r| r.is_ok()));
    }
}

/// `tagstream replay` reads a native readings file as it reads the same batches as JSON Lines
/// (it once read it as text to look for crime batches, and failed, when no `--crimes` was given).
#[test]
fn replay_of_a_native_readings_file_equals_replay_of_the_same_json_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("readings.bin");
    let mut writer = ReadingsFileWriter::create(&path).expect("create");
    for batch in common::fixture_batches() {
        writer
            .write_batch(&batch.tag, batch.seq, &batch.readings)
            .expect("write");
    }
    writer.finish().expect("flush");
    let orders = common::fixture("orders.json");
    let from_json = common::replay_alerts(
        &orders,
        &common::fixture("readings.jsonl"),
        &dir.path().join("json"),
    );
    let from_bin = common::replay_alerts(&orders, &path, &dir.path().join("bin"));
    assert!(!from_json.is_empty());
    assert_eq!(from_bin, from_json);
}
