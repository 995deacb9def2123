//! The data directory's lock (`DATA/lock`, an advisory `flock`): one process at a time owns a
//! data directory's stores — the server while it runs, or an offline command (`tagstream
//! retention run`, `tagstream people export`) that opens the log and the trail store itself.
//! The kernel releases the lock when the holder exits, however it exits.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}: another process (a running server?) holds this data directory", path.display())]
    Busy { path: PathBuf },
    #[error("locking {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the lock of `data_dir` (which must exist), without waiting.
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock, LockError> {
    let path = data_dir.join("lock");
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .mode(crate::data_dir::FILE_MODE)
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    // SAFETY: flock only reads its integer arguments; the descriptor is owned by `file`, which
    // outlives the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let error = std::io::Error::last_os_error();
        return Err(if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            LockError::Busy { path }
        } else {
            io(error)
        });
    }
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_data_dir(dir.path()).unwrap();
        assert!(matches!(
            lock_data_dir(dir.path()),
            Err(LockError::Busy { .. })
        ));
        drop(first);
        lock_data_dir(dir.path()).unwrap();
    }
}
