//! Data files: where sealed blocks live.
//!
//! `NNNNNNNN.trail` files start with the 8-byte header `TSTRDAT1` and then hold encoded blocks
//! back to back, written append-only. A block's position, length and checksum are kept in the
//! manifest, so a data file is never parsed on its own: a block is read with one positioned read
//! and checked against its manifest checksum. Bytes after the last checkpointed length are a torn
//! tail and are cut off on open. Files roll at a configured size; sealed files are immutable
//! except that retention overwrites removed blocks with zeros (their bytes must not survive).

use super::error::TrailError;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const DATA_HEADER: &[u8; 8] = b"TSTRDAT1";
const DATA_SUFFIX: &str = ".trail";

pub fn data_path(dir: &Path, file: u32) -> PathBuf {
    dir.join(format!("{file:08}{DATA_SUFFIX}"))
}

/// Data file numbers present in `dir`, ascending.
pub fn list_data_files(dir: &Path) -> Result<Vec<u32>, TrailError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(TrailError::io("listing", dir))? {
        let entry = entry.map_err(TrailError::io("listing", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(num) = name
            .strip_suffix(DATA_SUFFIX)
            .and_then(|n| n.parse::<u32>().ok())
        {
            out.push(num);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Fsyncs a directory so that created, renamed or removed entries are durable.
pub fn sync_dir(dir: &Path) -> Result<(), TrailError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(TrailError::io("syncing directory", dir))
}

/// Creates a new, empty data file (header only) and makes its directory entry durable.
pub fn create_data_file(dir: &Path, file: u32) -> Result<File, TrailError> {
    let path = data_path(dir, file);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(crate::data_dir::FILE_MODE) // person data: owner-only whatever the umask
        .open(&path)
        .map_err(TrailError::io("creating data file", &path))?;
    f.write_all(DATA_HEADER)
        .map_err(TrailError::io("writing", &path))?;
    f.sync_all().map_err(TrailError::io("syncing", &path))?;
    sync_dir(dir)?;
    Ok(f)
}

/// Opens an existing data file for reading and writing, checking its header.
pub fn open_data_file(dir: &Path, file: u32) -> Result<File, TrailError> {
    let path = data_path(dir, file);
    let f = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TrailError::MissingDataFile { path })
        }
        Err(e) => return Err(TrailError::io("opening data file", path)(e)),
    };
    let mut header = [0u8; 8];
    let n = read_full_at(&f, &mut header, 0).map_err(TrailError::io("reading", &path))?;
    if n < 8 || &header != DATA_HEADER {
        return Err(TrailError::BadHeader {
            path,
            found: header[..n].to_vec(),
        });
    }
    Ok(f)
}

fn read_full_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads one block and checks it against its manifest checksum.
pub fn read_block(
    f: &File,
    path: &Path,
    offset: u64,
    len_bytes: u32,
    crc: u32,
    buf: &mut Vec<u8>,
) -> Result<(), TrailError> {
    buf.clear();
    buf.resize(len_bytes as usize, 0);
    let n = read_full_at(f, buf, offset).map_err(TrailError::io("reading block", path))?;
    if n < buf.len() {
        return Err(TrailError::Corrupt {
            path: path.to_path_buf(),
            offset,
            source: super::error::CodecError::Truncated {
                at: n,
                len: buf.len(),
            },
        });
    }
    let computed = crc32fast::hash(buf);
    if computed != crc {
        return Err(TrailError::Checksum {
            path: path.to_path_buf(),
            offset,
            stored: crc,
            computed,
        });
    }
    Ok(())
}

/// Asks the kernel to start reading a block into the page cache now, so that the positioned
/// reads of a multi-block read overlap instead of waiting on the disk one after another.
/// Advisory only: failure is ignored.
pub fn prefetch(f: &File, offset: u64, len_bytes: u32) {
    use std::os::fd::AsRawFd;
    let Ok(off) = libc::off_t::try_from(offset) else {
        return;
    };
    let len = libc::off_t::from(len_bytes);
    // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is owned by `f`,
    // which outlives the call.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), off, len, libc::POSIX_FADV_WILLNEED);
    }
}

/// Overwrites a removed block with zeros so its positions do not survive on disk.
pub fn erase_block(f: &File, path: &Path, offset: u64, len_bytes: u32) -> Result<(), TrailError> {
    let zeros = vec![0u8; len_bytes as usize];
    f.write_all_at(&zeros, offset)
        .map_err(TrailError::io("erasing removed block", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_read_back_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = create_data_file(dir.path(), 3).unwrap();
        f.write_all(b"hello block").unwrap();
        let path = data_path(dir.path(), 3);
        let crc = crc32fast::hash(b"hello block");
        let f = open_data_file(dir.path(), 3).unwrap();
        let mut buf = Vec::new();
        read_block(&f, &path, 8, 11, crc, &mut buf).unwrap();
        assert_eq!(buf, b"hello block");
        assert!(matches!(
            read_block(&f, &path, 8, 11, crc ^ 1, &mut buf),
            Err(TrailError::Checksum { offset: 8, .. })
        ));
        assert!(matches!(
            read_block(&f, &path, 8, 20, crc, &mut buf),
            Err(TrailError::Corrupt { offset: 8, .. })
        ));
        erase_block(&f, &path, 8, 11).unwrap();
        assert!(read_block(&f, &path, 8, 11, crc, &mut buf).is_err());
        assert_eq!(list_data_files(dir.path()).unwrap(), vec![3]);
        assert!(matches!(
            open_data_file(dir.path(), 4),
            Err(TrailError::MissingDataFile { .. })
        ));
    }
}
