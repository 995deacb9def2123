//! Resynchronisation after damage: given a segment's bytes and the offset where a frame failed to
//! verify, split the rest of the segment into intact records and damaged byte ranges.
//!
//! A damaged range runs from the failing offset to the next offset where a complete frame with a
//! valid checksum starts (found by trying every byte offset: cheap structural checks first, the
//! CRC only when they pass). A random position passes all of them with probability far below
//! 2^-32, so a bit flipped anywhere in a record (payload, checksum or length field) costs exactly
//! that record. A damaged range that reaches the end of the segment has no valid record after it:
//! in the last segment that is what an incomplete final write leaves (a torn tail).
//!
//! Every reader (recovery, replay, inspect, compaction, the trail feed) goes through this one
//! function, so they all skip exactly the same bytes and number the records the same way.

use super::error::Corruption;
use super::record::{
    check_payload_structure, complete_frame_len, parse_frame_header, payload_checksum,
    FRAME_HEADER_LEN, MAX_PAYLOAD_LEN,
};

/// One piece of a segment, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// A complete frame, checksum valid, whose batch decodes: `bytes[offset..offset + len]`.
    Record { offset: u64, len: u64 },
    /// Bytes `start..end` hold no valid record start; `kind` says why the frame at `start`
    /// failed. `reaches_end`: no valid record follows in the segment.
    Damaged {
        start: u64,
        end: u64,
        kind: Corruption,
        reaches_end: bool,
    },
}

/// Checks the frame at the start of `bytes` completely (length, checksum, batch decoding);
/// returns its length. A `Payload` error means the checksum was valid, so the length is trusted.
pub fn check_frame(bytes: &[u8]) -> Result<usize, Corruption> {
    let Some(header_bytes) = bytes.get(..FRAME_HEADER_LEN) else {
        return Err(Corruption::ShortRecordHeader {
            available_bytes: bytes.len() as u64,
        });
    };
    let mut header = [0u8; FRAME_HEADER_LEN];
    header.copy_from_slice(header_bytes);
    let (len, stored) = parse_frame_header(&header);
    let len_bytes = u64::from(len);
    if len == 0 || len as usize > MAX_PAYLOAD_LEN {
        return Err(Corruption::BadLength {
            len_bytes,
            max_bytes: MAX_PAYLOAD_LEN as u64,
        });
    }
    let available = bytes.len() - FRAME_HEADER_LEN;
    let Some(payload) = bytes.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len as usize) else {
        return Err(Corruption::ShortPayload {
            available_bytes: available as u64,
            len_bytes,
        });
    };
    let computed = payload_checksum(payload);
    if computed != stored {
        return Err(Corruption::Checksum { stored, computed });
    }
    check_payload_structure(payload)?;
    Ok(FRAME_HEADER_LEN + len as usize)
}

/// The first offset `>= from` where a complete, checksum-valid frame starts.
pub fn next_frame_start(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(FRAME_HEADER_LEN - 1))
        .find(|&at| complete_frame_len(&bytes[at..]).is_some())
}

/// Splits `bytes[from..]` (a whole segment's bytes; `from` a frame boundary) into spans.
pub fn scan(bytes: &[u8], from: usize) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut at = from;
    while at < bytes.len() {
        match check_frame(&bytes[at..]) {
            Ok(len) => {
                spans.push(Span::Record {
                    offset: at as u64,
                    len: len as u64,
                });
                at += len;
            }
            Err(kind) => {
                let end = match &kind {
                    // Checksum valid, contents not: the frame's extent is known (check_frame
                    // only reports `Payload` for a complete frame).
                    Corruption::Payload(_) => {
                        let mut header = [0u8; FRAME_HEADER_LEN];
                        header.copy_from_slice(&bytes[at..at + FRAME_HEADER_LEN]);
                        let (len, _) = parse_frame_header(&header);
                        at + FRAME_HEADER_LEN + len as usize
                    }
                    _ => next_frame_start(bytes, at + 1).unwrap_or(bytes.len()),
                };
                spans.push(Span::Damaged {
                    start: at as u64,
                    end: end as u64,
                    kind,
                    reaches_end: end == bytes.len(),
                });
                at = end;
            }
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::super::record::encode_batch_frame;
    use super::super::test_batches::batch;
    use super::*;

    fn frames(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = b"TGSTLOG\x01".to_vec();
        let mut starts = Vec::new();
        for seq in 1..=n {
            starts.push(bytes.len());
            encode_batch_frame(&batch("tag-r", seq, (seq % 5) as usize), &mut bytes).unwrap();
        }
        (bytes, starts)
    }

    #[test]
    fn a_clean_segment_is_all_records() {
        let (bytes, starts) = frames(6);
        let spans = scan(&bytes, 8);
        assert_eq!(spans.len(), 6);
        for (span, start) in spans.iter().zip(&starts) {
            assert!(matches!(span, Span::Record { offset, .. } if *offset == *start as u64));
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_in_a_record_costs_only_that_record() {
        let (pristine, starts) = frames(5);
        let (from, to) = (starts[2], starts[3]);
        for at in from..to {
            for bit in [0x01u8, 0x80] {
                let mut bytes = pristine.clone();
                bytes[at] ^= bit;
                let spans = scan(&bytes, 8);
                let damaged: Vec<_> = spans
                    .iter()
                    .filter(|s| matches!(s, Span::Damaged { .. }))
                    .collect();
                assert_eq!(damaged.len(), 1, "flip at {at}: {spans:?}");
                assert!(
                    matches!(damaged[0], Span::Damaged { start, end, reaches_end: false, .. }
                        if *start == from as u64 && *end == to as u64),
                    "flip at {at}: {spans:?}"
                );
                assert_eq!(spans.len(), 5);
            }
        }
    }

    #[test]
    fn garbage_after_the_last_record_reaches_the_end() {
        let (mut bytes, starts) = frames(3);
        let cut = starts[2] + 5;
        bytes.truncate(cut);
        let spans = scan(&bytes, 8);
        assert_eq!(spans.len(), 3);
        assert!(matches!(
            spans[2],
            Span::Damaged {
                reaches_end: true,
                ..
            }
        ));
    }
}
