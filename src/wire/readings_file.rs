//! The native binary readings file: what the simulator writes and `tagstream replay --readings
//! file.bin` reads.
//!
//! Layout: the 8-byte magic `TAGSRDG1`, then frames in the wire encoding (`codec.rs`). A `Hello`
//! frame (empty secret) sets the current tag; the `Batch` frames after it belong to that tag. No
//! other frame type may appear. Specified in `docs/protocol.md`.

use super::codec::{decode_frame, try_encode_batch, try_encode_frame};
use super::frame::{
    Frame, FrameType, WireError, DEFAULT_MAX_FRAME_BYTES, LENGTH_PREFIX_BYTES, PROTOCOL_VERSION,
};
use crate::model::Reading;
use bytes::BytesMut;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use thiserror::Error;

/// The first 8 bytes of every readings file.
pub const READINGS_FILE_MAGIC: [u8; 8] = *b"TAGSRDG1";

/// What is wrong with a readings file (or writing one), and at which byte offset: the offset of
/// the frame (or magic) concerned, counted from the start of the file.
#[derive(Debug, Error)]
pub enum ReadingsFileError {
    #[error("byte 0: not a tagstream readings file (starts {found:02x?}, expected \"TAGSRDG1\")")]
    BadMagic { found: [u8; 8] },
    #[error("byte {offset}: file ends {available_bytes} bytes into a {needed_bytes}-byte {what}")]
    Truncated {
        offset: u64,
        what: &'static str,
        needed_bytes: u64,
        available_bytes: u64,
    },
    #[error("byte {offset}: {error}")]
    Frame { offset: u64, error: WireError },
    #[error("byte {offset}: batch before any hello (no current tag)")]
    BatchBeforeHello { offset: u64 },
    #[error("byte {offset}: unexpected {frame} frame (a readings file holds only hello and batch frames)")]
    UnexpectedFrame { offset: u64, frame: FrameType },
    #[error("byte {offset}: hello has protocol version {got}; this reader reads {supported}")]
    UnsupportedVersion {
        offset: u64,
        got: u16,
        supported: u16,
    },
    #[error("byte {offset}: i/o error: {source}")]
    Io { offset: u64, source: io::Error },
}

impl ReadingsFileError {
    /// The byte offset the error is about.
    pub fn offset(&self) -> u64 {
        match self {
            Self::BadMagic { .. } => 0,
            Self::Truncated { offset, .. }
            | Self::Frame { offset, .. }
            | Self::BatchBeforeHello { offset }
            | Self::UnexpectedFrame { offset, .. }
            | Self::UnsupportedVersion { offset, .. }
            | Self::Io { offset, .. } => *offset,
        }
    }
}

/// Writes a readings file: the magic on creation, then a `Hello` whenever the tag changes and a
/// `Batch` per call. Wrap unbuffered writers in a `BufWriter` (as [`ReadingsFileWriter::create`]
/// does); call [`ReadingsFileWriter::finish`] to flush.
#[derive(Debug)]
pub struct ReadingsFileWriter<W: Write> {
    out: W,
    buf: BytesMut,
    current_tag: Option<String>,
    offset_bytes: u64,
    max_frame_bytes: usize,
}

impl ReadingsFileWriter<BufWriter<File>> {
    /// Creates (or truncates) the file at `path` and writes the magic.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, ReadingsFileError> {
        let file =
            File::create(path).map_err(|source| ReadingsFileError::Io { offset: 0, source })?;
        Self::new(BufWriter::new(file))
    }
}

impl<W: Write> ReadingsFileWriter<W> {
    /// Writes the magic to `out`; frames are limited to [`DEFAULT_MAX_FRAME_BYTES`].
    pub fn new(out: W) -> Result<Self, ReadingsFileError> {
        Self::with_max_frame_bytes(out, DEFAULT_MAX_FRAME_BYTES)
    }

    /// As [`ReadingsFileWriter::new`], refusing batches whose frame would exceed
    /// `max_frame_bytes` (readers use the same limit).
    pub fn with_max_frame_bytes(
        mut out: W,
        max_frame_bytes: usize,
    ) -> Result<Self, ReadingsFileError> {
        out.write_all(&READINGS_FILE_MAGIC)
            .map_err(|source| ReadingsFileError::Io { offset: 0, source })?;
        Ok(Self {
            out,
            buf: BytesMut::new(),
            current_tag: None,
            offset_bytes: READINGS_FILE_MAGIC.len() as u64,
            max_frame_bytes,
        })
    }

    /// Appends batch `seq` of `tag`, preceded by a `Hello` if `tag` differs from the previous
    /// batch's. An invalid batch (bad tag, seq 0, no readings, a reading that cannot be encoded,
    /// too many readings) is refused and nothing is written.
    pub fn write_batch(
        &mut self,
        tag: &str,
        seq: u64,
        readings: &[Reading],
    ) -> Result<(), ReadingsFileError> {
        let offset = self.offset_bytes;
        self.buf.clear();
        let new_tag = self.current_tag.as_deref() != Some(tag);
        if new_tag {
            try_encode_frame(&Frame::hello(tag, ""), &mut self.buf, self.max_frame_bytes)
                .map_err(|error| ReadingsFileError::Frame { offset, error })?;
        }
        let batch_offset = offset + self.buf.len() as u64;
        try_encode_batch(seq, readings, &mut self.buf, self.max_frame_bytes).map_err(|error| {
            ReadingsFileError::Frame {
                offset: batch_offset,
                error,
            }
        })?;
        self.out
            .write_all(&self.buf)
            .map_err(|source| ReadingsFileError::Io { offset, source })?;
        self.offset_bytes += self.buf.len() as u64;
        if new_tag {
            self.current_tag = Some(tag.to_owned());
        }
        Ok(())
    }

    /// Bytes written so far, magic included.
    pub fn bytes_written(&self) -> u64 {
        self.offset_bytes
    }

    pub fn flush(&mut self) -> Result<(), ReadingsFileError> {
        self.out.flush().map_err(|source| ReadingsFileError::Io {
            offset: self.offset_bytes,
            source,
        })
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> Result<W, ReadingsFileError> {
        self.flush()?;
        Ok(self.out)
    }
}

/// Reads a readings file as `(tag, seq, readings)` batches, in file order. Stops (returns
/// `None`) after the first error. Wrap unbuffered readers in a `BufReader` (as
/// [`ReadingsFileReader::open`] does).
#[derive(Debug)]
pub struct ReadingsFileReader<R: Read> {
    input: R,
    buf: BytesMut,
    current_tag: Option<String>,
    offset_bytes: u64,
    max_frame_bytes: usize,
    done: bool,
}

impl ReadingsFileReader<BufReader<File>> {
    /// Opens the file at `path` and checks its magic.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadingsFileError> {
        let file =
            File::open(path).map_err(|source| ReadingsFileError::Io { offset: 0, source })?;
        Self::new(BufReader::with_capacity(1 << 16, file))
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl<R: Read> ReadingsFileReader<R> {
    /// Reads and checks the magic; frames are limited to [`DEFAULT_MAX_FRAME_BYTES`].
    pub fn new(input: R) -> Result<Self, ReadingsFileError> {
        Self::with_max_frame_bytes(input, DEFAULT_MAX_FRAME_BYTES)
    }

    /// As [`ReadingsFileReader::new`], refusing frames longer than `max_frame_bytes`.
    pub fn with_max_frame_bytes(
        mut input: R,
        max_frame_bytes: usize,
    ) -> Result<Self, ReadingsFileError> {
        let mut magic = [0u8; 8];
        let got = read_full(&mut input, &mut magic)
            .map_err(|source| ReadingsFileError::Io { offset: 0, source })?;
        if got < magic.len() {
            return Err(ReadingsFileError::Truncated {
                offset: 0,
                what: "magic",
                needed_bytes: magic.len() as u64,
                available_bytes: got as u64,
            });
        }
        if magic != READINGS_FILE_MAGIC {
            return Err(ReadingsFileError::BadMagic { found: magic });
        }
        Ok(Self {
            input,
            buf: BytesMut::new(),
            current_tag: None,
            offset_bytes: READINGS_FILE_MAGIC.len() as u64,
            max_frame_bytes,
            done: false,
        })
    }

    /// Bytes consumed so far, magic included.
    pub fn offset_bytes(&self) -> u64 {
        self.offset_bytes
    }

    /// Reads the next frame; `Ok(None)` at a clean end of file (between frames).
    fn read_frame(&mut self) -> Result<Option<Frame>, ReadingsFileError> {
        let offset = self.offset_bytes;
        let io_error = |source| ReadingsFileError::Io { offset, source };
        let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
        let got = read_full(&mut self.input, &mut prefix).map_err(io_error)?;
        if got == 0 {
            return Ok(None);
        }
        if got < prefix.len() {
            return Err(ReadingsFileError::Truncated {
                offset,
                what: "length prefix",
                needed_bytes: prefix.len() as u64,
                available_bytes: got as u64,
            });
        }
        let frame_bytes = u32::from_le_bytes(prefix) as usize;
        if frame_bytes > self.max_frame_bytes {
            return Err(ReadingsFileError::Frame {
                offset,
                error: WireError::FrameTooLarge {
                    len_bytes: frame_bytes as u64,
                    max_bytes: self.max_frame_bytes,
                },
            });
        }
        let total_bytes = LENGTH_PREFIX_BYTES + frame_bytes;
        self.buf.clear();
        self.buf.reserve(total_bytes);
        self.buf.extend_from_slice(&prefix);
        self.buf.resize(total_bytes, 0);
        let got =
            read_full(&mut self.input, &mut self.buf[LENGTH_PREFIX_BYTES..]).map_err(io_error)?;
        if got < frame_bytes {
            return Err(ReadingsFileError::Truncated {
                offset,
                what: "frame",
                needed_bytes: total_bytes as u64,
                available_bytes: (LENGTH_PREFIX_BYTES + got) as u64,
            });
        }
        self.offset_bytes += total_bytes as u64;
        match decode_frame(&mut self.buf, self.max_frame_bytes) {
            Ok(Some(frame)) => Ok(Some(frame)),
            // Unreachable: the whole frame is in the buffer. Reported rather than panicking.
            Ok(None) => Err(ReadingsFileError::Truncated {
                offset,
                what: "frame",
                needed_bytes: total_bytes as u64,
                available_bytes: self.buf.len() as u64,
            }),
            Err(error) => Err(ReadingsFileError::Frame { offset, error }),
        }
    }

    fn next_batch(&mut self) -> Result<Option<(String, u64, Vec<Reading>)>, ReadingsFileError> {
        loop {
            let offset = self.offset_bytes;
            let Some(frame) = self.read_frame()? else {
                return Ok(None);
            };
            match frame {
                Frame::Hello {
                    protocol_version,
                    tag,
                    ..
                } => {
                    if protocol_version != PROTOCOL_VERSION {
                        return Err(ReadingsFileError::UnsupportedVersion {
                            offset,
                            got: protocol_version,
                            supported: PROTOCOL_VERSION,
                        });
                    }
                    self.current_tag = Some(tag);
                }
                Frame::Batch { seq, readings } => {
                    let Some(tag) = &self.current_tag else {
                        return Err(ReadingsFileError::BatchBeforeHello { offset });
                    };
                    return Ok(Some((tag.clone(), seq, readings)));
                }
                other => {
                    return Err(ReadingsFileError::UnexpectedFrame {
                        offset,
                        frame: other.frame_type(),
                    })
                }
            }
        }
    }
}

impl<R: Read> Iterator for ReadingsFileReader<R> {
    type Item = Result<(String, u64, Vec<Reading>), ReadingsFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.next_batch();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result.transpose()
    }
}

impl<R: Read> std::iter::FusedIterator for ReadingsFileReader<R> {}
