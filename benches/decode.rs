//! Criterion benchmarks of the frame codec: decoding and encoding one `Batch` frame of 500
//! readings (a realistic mix of kinds), reported as readings per second.
//!
//! Run: `cargo bench --bench decode -- --warm-up-time 1 --measurement-time 3`.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tagstream::model::{DeviceEvent, Position, PositionSource, Reading, ReadingBody, TacSample};
use tagstream::wire::{decode_frame, encode_frame, Frame, DEFAULT_MAX_FRAME_BYTES};

const READINGS_PER_BATCH: usize = 500;

/// Mostly GPS fixes, with some alcohol samples, RF presence and device events.
fn sample_readings() -> Vec<Reading> {
    (0..READINGS_PER_BATCH)
        .map(|i| {
            let t_ms = 1_774_722_600_000 + i as i64 * 15_000;
            let battery_pct = Some(90 - (i / 10) as u8);
            let body = match i % 10 {
                0..=6 => ReadingBody::Position(Position {
                    lat_e7: 514_545_000 + i as i32 * 37,
                    lon_e7: -25_879_000 - i as i32 * 11,
                    precision_cm: 500 + i as u32,
                    source: PositionSource::Gps,
                    speed_ckmh: Some((i % 600) as u16),
                    heading_cdeg: if i % 3 == 0 {
                        None
                    } else {
                        Some((i * 71 % 36_000) as u16)
                    },
                    satellites: Some(6 + (i % 6) as u8),
                }),
                7 => ReadingBody::Tac(TacSample {
                    tac_ugdl: i as i32 * 10,
                    ir_uv: 1_200_000,
                    temp_mc: 33_500,
                }),
                8 => ReadingBody::Rf {
                    in_range: i % 20 < 10,
                },
                _ => ReadingBody::Event(DeviceEvent::ALL[i % DeviceEvent::ALL.len()]),
            };
            Reading {
                t_ms,
                battery_pct,
                body,
            }
        })
        .collect()
}

fn bench_codec(c: &mut Criterion) {
    let frame = Frame::Batch {
        seq: 42,
        readings: sample_readings(),
    };
    let mut encoded = BytesMut::new();
    encode_frame(&frame, &mut encoded);

    let mut group = c.benchmark_group("batch_500");
    group.throughput(Throughput::Elements(READINGS_PER_BATCH as u64));
    // Steady state, as on a connection: the frame's bytes land in a reused receive buffer (the
    // 16 KB copy is included, like a socket read) and the decoded batch is dropped afterwards.
    let mut buf = BytesMut::with_capacity(encoded.len());
    group.bench_function("decode", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&encoded);
            decode_frame(black_box(&mut buf), DEFAULT_MAX_FRAME_BYTES)
        })
    });
    let mut out = BytesMut::with_capacity(encoded.len());
    group.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            encode_frame(black_box(&frame), &mut out);
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
