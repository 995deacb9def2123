//! Segment files: naming (`{first record number:020}.seg`), the 8-byte magic+version header,
//! listing a log directory, creating a segment durably (file and directory fsynced), and reading a
//! segment's frames one by one while saying exactly where and how any damage starts.

use super::error::{Corruption, LogError, LogResult};
use super::record::{parse_frame_header, payload_checksum, FRAME_HEADER_LEN, MAX_PAYLOAD_LEN};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// First bytes of every segment: magic `TGSTLOG` and format version 1.
pub const SEGMENT_HEADER: [u8; 8] = *b"TGSTLOG\x01";
/// Length of [`SEGMENT_HEADER`].
pub const SEGMENT_HEADER_LEN: u64 = SEGMENT_HEADER.len() as u64;
const SEGMENT_SUFFIX: &str = ".seg";
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// One segment file of a log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Global number of the segment's first record (its file name).
    pub first_record: u64,
    pub path: PathBuf,
}

impl SegmentFile {
    /// The file name, e.g. `00000000000000000000.seg`.
    pub fn name(&self) -> String {
        segment_file_name(self.first_record)
    }
}

/// File name of the segment whose first record is `first_record`.
pub fn segment_file_name(first_record: u64) -> String {
    format!("{first_record:020}{SEGMENT_SUFFIX}")
}

/// The first record number a segment file name stands for, if it is a segment name.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments of `dir` in log order. Files that are not segments are ignored.
pub fn list_segments(dir: &Path) -> LogResult<Vec<SegmentFile>> {
    let entries = fs::read_dir(dir).map_err(|e| LogError::io("listing log directory", dir, e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("listing log directory", dir, e))?;
        let name = entry.file_name();
        if let Some(first_record) = name.to_str().and_then(parse_segment_file_name) {
            segments.push(SegmentFile {
                first_record,
                path: entry.path(),
            });
        }
    }
    segments.sort_by_key(|s| s.first_record);
    Ok(segments)
}

/// Makes the directory's entries (created or removed files) durable.
pub fn sync_dir(dir: &Path) -> LogResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("fsyncing log directory", dir, e))
}

/// Creates segment `first_record` in `dir` with its header, durably: the header is fdatasynced and
/// the directory fsynced before this returns. Returns the file positioned after the header.
pub fn create_segment(dir: &Path, first_record: u64) -> LogResult<(File, PathBuf)> {
    let path = dir.join(segment_file_name(first_record));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::data_dir::FILE_MODE) // person data: owner-only whatever the umask
        .open(&path)
        .map_err(|e| LogError::io("creating segment", &path, e))?;
    file.write_all(&SEGMENT_HEADER)
        .and_then(|()| file.sync_data())
        .map_err(|e| LogError::io("writing segment header", &path, e))?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// Rewrites a segment whose header was torn (a crash while the segment was being created) as an
/// empty segment, durably.
pub fn reinitialize_segment(path: &Path) -> LogResult<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| LogError::io("opening segment to rewrite its header", path, e))?;
    file.write_all(&SEGMENT_HEADER)
        .and_then(|()| file.sync_data())
        .map_err(|e| LogError::io("rewriting segment header", path, e))
}

/// Cuts a segment to `len_bytes`, durably.
pub fn truncate_segment(path: &Path, len_bytes: u64) -> LogResult<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| LogError::io("opening segment to truncate it", path, e))?;
    file.set_len(len_bytes)
        .and_then(|()| file.sync_data())
        .map_err(|e| LogError::io("truncating segment", path, e))
}

/// What [`FrameReader::next_frame`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete frame with a valid checksum starting at `offset`; its payload is in the buffer.
    Record { offset: u64, frame_len: u64 },
    /// The segment ends cleanly after the previous frame.
    End,
    /// The bytes from `offset` on are not a valid frame.
    Damaged { offset: u64, kind: Corruption },
}

/// Reads one segment's frames in order, verifying lengths and checksums.
pub struct FrameReader {
    path: PathBuf,
    reader: BufReader<File>,
    /// Offset of the next unread byte.
    offset: u64,
    /// File length when opened; bytes appended later are not read.
    len_bytes: u64,
}

impl FrameReader {
    /// Opens a segment and checks its header. `Ok(Err(..))` is a damaged header (offset 0).
    pub fn open(path: &Path) -> LogResult<Result<FrameReader, Corruption>> {
        let file = File::open(path).map_err(|e| LogError::io("opening segment", path, e))?;
        let len_bytes = file
            .metadata()
            .map_err(|e| LogError::io("reading segment metadata", path, e))?
            .len();
        if len_bytes < SEGMENT_HEADER_LEN {
            return Ok(Err(Corruption::ShortHeader { len_bytes }));
        }
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let mut header = [0u8; 8];
        reader
            .read_exact(&mut header)
            .map_err(|e| LogError::io("reading segment header", path, e))?;
        if header != SEGMENT_HEADER {
            return Ok(Err(Corruption::BadHeader { found: header }));
        }
        Ok(Ok(FrameReader {
            path: path.to_owned(),
            reader,
            offset: SEGMENT_HEADER_LEN,
            len_bytes,
        }))
    }

    /// The segment's length in bytes when it was opened.
    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// Reads the next frame's payload into `payload`. After `End` or `Damaged`, do not call again.
    pub fn next_frame(&mut self, payload: &mut Vec<u8>) -> LogResult<Frame> {
        let offset = self.offset;
        let available_bytes = self.len_bytes - offset;
        if available_bytes == 0 {
            return Ok(Frame::End);
        }
        if available_bytes < FRAME_HEADER_LEN as u64 {
            return Ok(Frame::Damaged {
                offset,
                kind: Corruption::ShortRecordHeader { available_bytes },
            });
        }
        let mut header = [0u8; FRAME_HEADER_LEN];
        self.read_exact(&mut header)?;
        let (len, stored) = parse_frame_header(&header);
        let len_bytes = u64::from(len);
        if len == 0 || len as usize > MAX_PAYLOAD_LEN {
            return Ok(Frame::Damaged {
                offset,
                kind: Corruption::BadLength {
                    len_bytes,
                    max_bytes: MAX_PAYLOAD_LEN as u64,
                },
            });
        }
        let payload_available = available_bytes - FRAME_HEADER_LEN as u64;
        if payload_available < len_bytes {
            return Ok(Frame::Damaged {
                offset,
                kind: Corruption::ShortPayload {
                    available_bytes: payload_available,
                    len_bytes,
                },
            });
        }
        payload.resize(len as usize, 0);
        self.read_exact(payload)?;
        let computed = payload_checksum(payload);
        if computed != stored {
            return Ok(Frame::Damaged {
                offset,
                kind: Corruption::Checksum { stored, computed },
            });
        }
        let frame_len = FRAME_HEADER_LEN as u64 + len_bytes;
        self.offset += frame_len;
        Ok(Frame::Record { offset, frame_len })
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> LogResult<()> {
        self.reader
            .read_exact(buf)
            .map_err(|e| LogError::io("reading segment", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_zero_padded_record_numbers() {
        assert_eq!(segment_file_name(0), "00000000000000000000.seg");
        assert_eq!(segment_file_name(1234), "00000000000000001234.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000001234.seg"),
            Some(1234)
        );
        assert_eq!(parse_segment_file_name("1234.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000123x.seg"), None);
        assert_eq!(parse_segment_file_name("00000000000000001234.tmp"), None);
    }

    #[test]
    fn listing_orders_segments_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        create_segment(dir.path(), 10).unwrap();
        create_segment(dir.path(), 0).unwrap();
        fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let listed: Vec<u64> = list_segments(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.first_record)
            .collect();
        assert_eq!(listed, vec![0, 10]);
        assert!(matches!(
            create_segment(dir.path(), 10),
            Err(LogError::Io {
                op: "creating segment",
                ..
            })
        ));
    }

    #[test]
    fn header_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_file_name(0));
        fs::write(&path, b"TGST").unwrap();
        assert_eq!(
            FrameReader::open(&path).unwrap().err(),
            Some(Corruption::ShortHeader { len_bytes: 4 })
        );
        fs::write(&path, b"NOTALOG!").unwrap();
        assert!(matches!(
            FrameReader::open(&path).unwrap().err(),
            Some(Corruption::BadHeader { .. })
        ));
        reinitialize_segment(&path).unwrap();
        let mut reader = FrameReader::open(&path).unwrap().unwrap();
        assert_eq!(reader.next_frame(&mut Vec::new()).unwrap(), Frame::End);
    }
}
