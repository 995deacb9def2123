//! The public test vectors of Traccar's `TeltonikaProtocolDecoderTest`, decoded through the
//! server's codec, every field checked against the bytes as the Teltonika documentation lays
//! them out (the values were read off the hex, not from this decoder's output).

use super::frame::{DeviceMessage, Incoming, ServerCodec};
use super::mapping::{position_of, readings_of, unmapped_io, MappingConfig};
use super::*;
use crate::model::{Position, PositionSource, ReadingBody};
use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

pub(super) const HANDSHAKE: &str = "000F313233343536373839303132333435";

/// One Codec 8 record: 2019-01-04 12:27:19Z, 48.1523066 N 16.3745183 E, 190 m, 198°, 15
/// satellites, 83 km/h (the vector quoted in issue 19).
pub(super) const CODEC8_ONE_RECORD: &str = "000000000000004c08010000016818d500580009c28d9f1cb3757a00be00c60f0053000f06f0011503c80001011d00fc0007423799180053cdf80dce426f430f88190bb8560bb802f100005aa110002887e000010000ee8d";

/// Codec 8, four records, each with one 8-byte element (78, iButton).
pub(super) const CODEC8_FOUR_RECORDS: &str = "000000000000009f080400000159738f76b8012e13b796110ab27600d700000b00004e01000000014e000000000000000000000159738f6ee8012e13b796110ab27600d700000a00004e01000000014e01000b00791c179300000159738f6b00012e13b796110ab27600d700000a00004e01000000014e000000000000000000000159738f5f48012e13b796110ab27600d700000b00004e01000000014e01000b00791c17930400009671";

/// Codec 8, three records.
pub(super) const CODEC8_THREE_RECORDS: &str = "00000000000000da08030000017fcedf499600280431be0eded45d0038012d100000fa100901000200b300b4004501500415034702fa00054232a1180000cd3b2fce281d43001f02c700000006f10000a029000000017fcedea99600280432070eded3dd00380046130009000f0801010200b300b400450150051502470205423276180009cd3b2fce281d43001f02c700000027f10000a0290000000179d50853180027f65d3f0ed67212001500f1110061000f0801010200b300b4004501500515034702054234f4180061cd53d1ce28c043003e02c700000147f1000000290003000052cb";

/// Codec 8 Extended, one record with two variable-length elements (a VIN and fault codes).
pub(super) const CODEC8E_VARIABLE_LENGTH: &str = "00000000000000a38e0100000178b11c9e1000040bbbc91f03190c002100e113001300000010000600ef0100f00100150300c800004501001e070005004237e00018000a00ce166200430f970024059f000300f10000665900c70000001e00100000a1b500000002010000115756315a5a5a32455a38363031353338380119002950303239392c50303637352c50303637342c50303637322c50303637312c50303437312c50324241430100001ad8";

/// Codec 8 Extended, two records without a fix (0 satellites, GNSS status 2).
pub(super) const CODEC8E_NO_FIX: &str = "00000000000000b98e0200000179555c7bf8010b3a1cfbebc142b00000000000000000ec000f000900f00000150000c80000450200710100740001070100fa0000ec01000500b500000018000000430d560044000000190000000100f1000000000000000000000179555c83c8010b3a1cfbebc142b0000000000000000185000f000900f00000150000c80000450200710100740001070100fa00018511000500b500000018000000430d560044000000190000000100f100000000000000000200003251";

pub(super) fn bytes_of(hex_text: &str) -> BytesMut {
    BytesMut::from(&hex::decode(hex_text).expect("test vector is hex")[..])
}

/// Decodes a handshake then one AVL packet through a fresh server codec.
pub(super) fn decode_after_handshake(packet_hex: &str) -> Incoming {
    let mut codec = ServerCodec::default();
    let mut src = bytes_of(HANDSHAKE);
    codec.decode(&mut src).expect("handshake").expect("whole");
    src.extend_from_slice(&bytes_of(packet_hex));
    let incoming = codec.decode(&mut src).expect("framed").expect("whole");
    assert!(src.is_empty(), "the codec consumed the whole packet");
    incoming
}

fn avl(packet_hex: &str) -> AvlPacket {
    match decode_after_handshake(packet_hex) {
        Incoming::Message(DeviceMessage::Avl(packet)) => packet,
        other => panic!("expected an AVL packet, got {other:?}"),
    }
}

/// IO elements of one width: `(id, value)` pairs made into `IoValue`s by `width`.
fn elements<T: Copy>(width: fn(T) -> IoValue, pairs: &[(u16, T)]) -> Vec<IoElement> {
    pairs
        .iter()
        .map(|&(id, v)| IoElement {
            id,
            value: width(v),
        })
        .collect()
}

#[test]
fn handshake_names_the_imei() {
    let mut codec = ServerCodec::default();
    let mut src = bytes_of(HANDSHAKE);
    let incoming = codec.decode(&mut src).unwrap().unwrap();
    assert_eq!(
        incoming,
        Incoming::Message(DeviceMessage::Imei("123456789012345".parse().unwrap()))
    );
    assert!(src.is_empty());
}

#[test]
fn codec8_one_record_every_field() {
    let packet = avl(CODEC8_ONE_RECORD);
    assert_eq!(packet.codec, Codec::Codec8);
    let expected = AvlRecord {
        t_ms: 1_546_604_839_000, // 2019-01-04T12:27:19Z
        priority: Priority::Low,
        gps: GpsElement {
            longitude_e7: 163_745_183,
            latitude_e7: 481_523_066,
            altitude_m: 190,
            angle_deg: 198,
            satellites: 15,
            speed_kmh: 83,
        },
        event_io_id: 0,
        io: [
            elements(
                IoValue::U8,
                &[(240, 1), (21, 3), (200, 0), (1, 1), (29, 0), (252, 0)],
            ),
            elements(
                IoValue::U16,
                &[
                    (66, 0x3799),
                    (24, 0x53),
                    (205, 0xf80d),
                    (206, 0x426f),
                    (67, 0x0f88),
                    (25, 0x0bb8),
                    (86, 0x0bb8),
                ],
            ),
            elements(IoValue::U32, &[(241, 0x5aa1), (16, 0x0028_87e0)]),
        ]
        .concat(),
    };
    assert_eq!(packet.records, vec![expected]);

    let config = MappingConfig::default();
    let readings = readings_of(&packet.records[0], &config);
    assert_eq!(readings.len(), 1);
    assert_eq!(readings[0].t_ms, 1_546_604_839_000);
    assert_eq!(
        readings[0].battery_pct, None,
        "no battery level element (113)"
    );
    assert_eq!(
        readings[0].body,
        ReadingBody::Position(Position {
            lat_e7: 481_523_066,
            lon_e7: 163_745_183,
            precision_cm: config.default_precision_cm, // no HDOP element (182)
            source: PositionSource::Gps,
            speed_ckmh: Some(8_300),
            heading_cdeg: Some(19_800),
            satellites: Some(15),
        })
    );
    // Every element but external voltage (read for the charging event) stays visible.
    let unmapped: Vec<u16> = unmapped_io(&packet.records[0]).map(|e| e.id).collect();
    assert_eq!(
        unmapped,
        [240, 21, 200, 1, 29, 252, 24, 205, 206, 67, 25, 86, 241, 16]
    );
}

#[test]
fn codec8_four_records_in_one_packet() {
    let packet = avl(CODEC8_FOUR_RECORDS);
    assert_eq!(packet.codec, Codec::Codec8);
    // Times as sent (newest first), 0x159738f76b8 and on; every record the same place.
    let times_ms: Vec<i64> = packet.records.iter().map(|r| r.t_ms).collect();
    assert_eq!(
        times_ms,
        [
            0x0159_738f_76b8,
            0x0159_738f_6ee8,
            0x0159_738f_6b00,
            0x0159_738f_5f48
        ]
    );
    let satellites: Vec<u8> = packet.records.iter().map(|r| r.gps.satellites).collect();
    assert_eq!(satellites, [11, 10, 10, 11]);
    let ibutton = [0u64, 0x0100_0b00_791c_1793, 0, 0x0100_0b00_791c_1793];
    for (record, ibutton) in packet.records.iter().zip(ibutton) {
        assert_eq!(record.priority, Priority::High);
        assert_eq!(
            record.gps,
            GpsElement {
                longitude_e7: 0x2e13_b796,
                latitude_e7: 0x110a_b276,
                altitude_m: 0xd7,
                angle_deg: 0,
                satellites: record.gps.satellites,
                speed_kmh: 0,
            }
        );
        assert_eq!(record.event_io_id, 78);
        assert_eq!(
            record.io,
            vec![IoElement {
                id: 78,
                value: IoValue::U64(ibutton)
            }]
        );
    }
}

#[test]
fn codec8_three_records_in_one_packet() {
    let packet = avl(CODEC8_THREE_RECORDS);
    let gps =
        |latitude_e7, longitude_e7, altitude_m, angle_deg, satellites, speed_kmh| GpsElement {
            longitude_e7,
            latitude_e7,
            altitude_m,
            angle_deg,
            satellites,
            speed_kmh,
        };
    let summary: Vec<(i64, GpsElement, u16, usize)> = packet
        .records
        .iter()
        .map(|r| (r.t_ms, r.gps, r.event_io_id, r.io.len()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                0x017f_cedf_4996,
                gps(0x0ede_d45d, 0x2804_31be, 56, 301, 16, 0),
                250,
                16
            ),
            (
                0x017f_cede_a996,
                gps(0x0ede_d3dd, 0x2804_3207, 56, 70, 19, 9),
                0,
                15
            ),
            (
                0x0179_d508_5318,
                gps(0x0ed6_7212, 0x27f6_5d3f, 21, 241, 17, 97),
                0,
                15
            ),
        ]
    );
    // GNSS status (69) is 1, "on with fix", in all three: three positions.
    let config = MappingConfig::default();
    let speeds: Vec<Option<u16>> = packet
        .records
        .iter()
        .map(|r| position_of(r, &config).and_then(|p| p.speed_ckmh))
        .collect();
    assert_eq!(speeds, [Some(0), Some(900), Some(9_700)]);
}

#[test]
fn codec8_extended_keeps_variable_length_elements() {
    let packet = avl(CODEC8E_VARIABLE_LENGTH);
    assert_eq!(packet.codec, Codec::Codec8Extended);
    let record = &packet.records[0];
    assert_eq!(record.t_ms, 0x0178_b11c_9e10); // 2021-04-08T10:52:26Z
    assert_eq!(record.t_ms, 1_617_879_146_000);
    assert_eq!(record.priority, Priority::Low);
    assert_eq!(
        record.gps,
        GpsElement {
            longitude_e7: 67_877_833,
            latitude_e7: 520_296_716,
            altitude_m: 33,
            angle_deg: 225,
            satellites: 19,
            speed_kmh: 19,
        }
    );
    assert_eq!(record.event_io_id, 0);
    let expected_io = [
        elements(
            IoValue::U8,
            &[(239, 1), (240, 1), (21, 3), (200, 0), (69, 1), (30, 7)],
        ),
        elements(
            IoValue::U16,
            &[
                (66, 0x37e0),
                (24, 0x0a),
                (206, 0x1662),
                (67, 0x0f97),
                (36, 0x059f),
            ],
        ),
        elements(IoValue::U32, &[(241, 0x6659), (199, 0x1e), (16, 0xa1b5)]),
        vec![
            IoElement {
                id: 256,
                value: IoValue::Bytes(Bytes::from_static(b"WV1ZZZ2EZ86015388")),
            },
            IoElement {
                id: 281,
                value: IoValue::Bytes(Bytes::from_static(
                    b"P0299,P0675,P0674,P0672,P0671,P0471,P2BAC",
                )),
            },
        ],
    ]
    .concat();
    assert_eq!(record.io, expected_io);
    let position = position_of(record, &MappingConfig::default()).expect("a fix");
    assert_eq!(position.satellites, Some(19));
    assert_eq!(position.heading_cdeg, Some(22_500));
    assert_eq!(position.speed_ckmh, Some(1_900));
}

#[test]
fn codec8_extended_without_fix_gives_no_position() {
    let packet = avl(CODEC8E_NO_FIX);
    assert_eq!(packet.codec, Codec::Codec8Extended);
    assert_eq!(packet.records.len(), 2);
    let events: Vec<u16> = packet.records.iter().map(|r| r.event_io_id).collect();
    assert_eq!(events, [236, 389]);
    for record in &packet.records {
        assert_eq!(record.priority, Priority::High);
        // The last known place (0x0b3a1cfb E, 0xebc142b0 = -33.9656016 S), with 0 satellites.
        assert_eq!(record.gps.satellites, 0);
        assert_eq!(record.gps.longitude_e7, 0x0b3a_1cfb);
        assert_eq!(record.gps.latitude_e7, -339_656_016);
        assert_eq!(record.gps.latitude_e7 as u32, 0xebc1_42b0);
        assert_eq!(
            record.io_value(69),
            Some(&IoValue::U8(2)),
            "on, without fix"
        );
        assert_eq!(record.io_value(113), Some(&IoValue::U8(1)), "battery 1%");
        assert_eq!(record.io_value(67), Some(&IoValue::U16(3414)));
        assert_eq!(record.io.len(), 15);
        // No fix and neither event is one the model knows: nothing to store.
        assert_eq!(readings_of(record, &MappingConfig::default()), vec![]);
    }
    // The second record's event element, a 2-byte id only Codec 8 Extended can carry.
    assert_eq!(packet.records[1].io_value(389), Some(&IoValue::U8(17)));
}

#[test]
fn every_vector_re_encodes_to_its_own_bytes() {
    for hex_text in [
        CODEC8_ONE_RECORD,
        CODEC8_FOUR_RECORDS,
        CODEC8_THREE_RECORDS,
        CODEC8E_VARIABLE_LENGTH,
        CODEC8E_NO_FIX,
    ] {
        let packet = avl(hex_text);
        let mut out = BytesMut::new();
        encode_avl_packet(&packet, &mut out, DEFAULT_MAX_DATA_BYTES).unwrap();
        assert_eq!(hex::encode(&out), hex_text.to_lowercase());
    }
}
