//! Where a node checkpoint lives in the data directory and how the file is written, read and
//! discarded. What it holds is `topology::checkpoint`'s business; this module only knows it is
//! state derived from the log (so losing it costs a full replay, never data) that may hold
//! people's data (so it is owner-only, written atomically, and purges remove it: retention
//! calls [`discard`] without knowing what is inside).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The checkpoint a node restores at its next start.
pub const FILE_NAME: &str = "node.checkpoint";
/// A checkpoint that failed its checks, kept for a look (never restored).
pub const REJECTED_NAME: &str = "node.checkpoint.rejected";
/// The file being written (renamed over [`FILE_NAME`] once durable).
const TMP_NAME: &str = "node.checkpoint.tmp";

/// A checkpoint file could not be written, read or removed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct CheckpointFileError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn io<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CheckpointFileError + 'a {
    move |source| CheckpointFileError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The checkpoint's path in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Writes `parts` (in order) as the checkpoint: a temporary file, owner-only, synced, renamed
/// over the old one, and the directory synced, so a crash leaves the old checkpoint or the new
/// one, never a mixture.
pub fn write(data_dir: &Path, parts: &[&[u8]]) -> Result<u64, CheckpointFileError> {
    let tmp = data_dir.join(TMP_NAME);
    let mut file = crate::data_dir::create_private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io("creating", &tmp))?;
    let mut written = 0u64;
    for part in parts {
        file.write_all(part).map_err(io("writing", &tmp))?;
        written += part.len() as u64;
    }
    file.sync_all().map_err(io("syncing", &tmp))?;
    drop(file);
    let target = path(data_dir);
    std::fs::rename(&tmp, &target).map_err(io("renaming into place", &target))?;
    sync_dir(data_dir)?;
    Ok(written)
}

/// The checkpoint's bytes, `None` when there is none.
pub fn read(data_dir: &Path) -> Result<Option<Vec<u8>>, CheckpointFileError> {
    let path = path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("reading", &path)(e)),
    }
}

/// Moves the checkpoint aside (it failed its checks): the next start does not try it again.
pub fn set_aside(data_dir: &Path) -> Result<(), CheckpointFileError> {
    let (from, to) = (path(data_dir), data_dir.join(REJECTED_NAME));
    match std::fs::rename(&from, &to) {
        Ok(()) => sync_dir(data_dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("setting aside", &from)(e)),
    }
}

/// Removes every checkpoint file of `data_dir` (the checkpoint, one set aside, one half
/// written): a purge must leave none holding what it removed. Returns whether one existed.
pub fn discard(data_dir: &Path) -> Result<bool, CheckpointFileError> {
    let mut removed = false;
    for name in [FILE_NAME, REJECTED_NAME, TMP_NAME] {
        let path = data_dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing", &path)(e)),
        }
    }
    if removed {
        sync_dir(data_dir)?;
    }
    Ok(removed)
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointFileError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_owner_only_replaced_whole_and_discarded_with_any_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &[b"ab", b"cd"]).unwrap();
        assert_eq!(read(dir.path()).unwrap().as_deref(), Some(&b"abcd"[..]));
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        write(dir.path(), &[b"xy"]).unwrap();
        assert_eq!(read(dir.path()).unwrap().as_deref(), Some(&b"xy"[..]));
        set_aside(dir.path()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        assert!(dir.path().join(REJECTED_NAME).exists());
        write(dir.path(), &[b"zz"]).unwrap();
        assert!(discard(dir.path()).unwrap());
        assert!(!dir.path().join(REJECTED_NAME).exists());
        assert_eq!(read(dir.path()).unwrap(), None);
        assert!(!discard(dir.path()).unwrap());
    }
}
