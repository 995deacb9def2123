//! Criterion benchmarks of the Teltonika server codec: decoding realistic AVL packets (framing,
//! CRC-16, records) and mapping them to readings, reported as records per second; each packet's
//! size is printed so that MB/s follows (records/s × bytes per record).
//!
//! Packets as FMB-series trackers send them: each record an FMB920-like set of 17 IO elements
//! (ignition, movement, GSM signal, GNSS status, battery level, HDOP, PDOP, external and battery
//! voltage, speed, cell ids, operator, odometer), in Codec 8 and Codec 8 Extended, one record a
//! packet (live tracking) and 10 a packet (a device sending its buffer).
//!
//! Run: `cargo bench --bench teltonika_decode -- --warm-up-time 1 --measurement-time 3`.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use tagstream::devices::teltonika::{
    encode_avl_packet, readings_of, AvlPacket, AvlRecord, Codec, DeviceMessage, GpsElement,
    Incoming, IoElement, IoValue, MappingConfig, Priority, ServerCodec, DEFAULT_MAX_DATA_BYTES,
};
use tokio_util::codec::Decoder;

const HANDSHAKE: &[u8] = b"\x00\x0f356307042441013";

fn realistic_record(i: usize) -> AvlRecord {
    let u8s = [(239, 1), (240, 1), (21, 4), (69, 1), (113, 87), (200, 0)];
    let u16s = [
        (182, 9 + (i % 7) as u16),
        (181, 14),
        (66, 12_480),
        (67, 4_012),
        (24, (i % 90) as u16),
        (205, 0x2e41),
        (206, 0x1a2b),
    ];
    let u32s = [(241, 23_410), (16, 1_200_000 + i as u32 * 17), (199, 42)];
    let io = u8s
        .iter()
        .map(|&(id, v)| IoElement {
            id,
            value: IoValue::U8(v),
        })
        .chain(u16s.iter().map(|&(id, v)| IoElement {
            id,
            value: IoValue::U16(v),
        }))
        .chain(u32s.iter().map(|&(id, v)| IoElement {
            id,
            value: IoValue::U32(v),
        }))
        .chain([IoElement {
            id: 11,
            value: IoValue::U64(0x0089_4410_0000_1234),
        }])
        .collect();
    AvlRecord {
        t_ms: 1_774_722_600_000 + i as i64 * 30_000,
        priority: Priority::Low,
        gps: GpsElement {
            longitude_e7: -1_278_000 - i as i32 * 13,
            latitude_e7: 515_074_000 + i as i32 * 29,
            altitude_m: 24,
            angle_deg: (i * 37 % 360) as u16,
            satellites: 9 + (i % 4) as u8,
            speed_kmh: (i % 90) as u16,
        },
        event_io_id: 0,
        io,
    }
}

/// `packets` packets of `records` records each, after a handshake, as one byte stream.
fn stream(codec: Codec, records: usize, packets: usize) -> (BytesMut, usize) {
    let mut out = BytesMut::from(HANDSHAKE);
    for p in 0..packets {
        let packet = AvlPacket {
            codec,
            records: (0..records)
                .map(|r| realistic_record(p * records + r))
                .collect(),
        };
        encode_avl_packet(&packet, &mut out, DEFAULT_MAX_DATA_BYTES).expect("encodes");
    }
    let packet_bytes = (out.len() - HANDSHAKE.len()) / packets;
    (out, packet_bytes)
}

fn bench_decode(c: &mut Criterion) {
    const PACKETS: usize = 100;
    let mut group = c.benchmark_group("teltonika");
    for (codec, name) in [
        (Codec::Codec8, "codec8"),
        (Codec::Codec8Extended, "codec8e"),
    ] {
        for records in [1usize, 10] {
            let (bytes, packet_bytes) = stream(codec, records, PACKETS);
            eprintln!(
                "{name} {records} record(s) a packet: {packet_bytes} bytes a packet, {:.1} bytes a record",
                packet_bytes as f64 / records as f64
            );
            group.throughput(Throughput::Elements((records * PACKETS) as u64));
            let mut buf = BytesMut::with_capacity(bytes.len());
            group.bench_function(format!("decode_{name}_{records}_per_packet"), |b| {
                b.iter(|| {
                    decode_stream(&mut buf, &bytes, |incoming| {
                        usize::from(matches!(black_box(&incoming), Incoming::Message(_)))
                    })
                })
            });
            let config = MappingConfig::default();
            group.bench_function(format!("decode_and_map_{name}_{records}_per_packet"), |b| {
                b.iter(|| {
                    decode_stream(&mut buf, &bytes, |incoming| match incoming {
                        Incoming::Message(DeviceMessage::Avl(packet)) => packet
                            .records
                            .iter()
                            .map(|record| readings_of(record, &config).len())
                            .sum(),
                        _ => 0,
                    })
                })
            });
        }
    }
    group.finish();
}

/// Decodes the whole stream as a connection would: its bytes land in a reused receive buffer (the
/// copy included, like a socket read) and each message is handed to `each`, then dropped.
/// Returns the sum of what `each` counted.
fn decode_stream(
    buf: &mut BytesMut,
    bytes: &[u8],
    mut each: impl FnMut(Incoming) -> usize,
) -> usize {
    buf.clear();
    buf.extend_from_slice(bytes);
    let mut server = ServerCodec::default();
    let mut counted = 0;
    while let Ok(Some(incoming)) = server.decode(black_box(&mut *buf)) {
        counted += each(incoming);
    }
    counted
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
