//! Owner-only permissions for the data directory: everything tagstream keeps there (metadata,
//! alerts, crimes, log segments, trail chunks, keys, tokens) is about people or secret, so the
//! directory and every directory under it are `0700` and every file `0600`, whatever the umask.
//!
//! Every command that writes a data directory calls [`secure_data_dir`] first: it sets the
//! process umask to `0o077` (so files any part of the code creates later are owner-only, SQLite's
//! `-wal`/`-shm` included), creates the directory `0700`, and repairs the modes of what is
//! already there (a directory made under umask 022 by an older version). Files this crate opens
//! itself are also created with an explicit mode ([`create_private_file`]).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
#[error("securing {}: {source}", path.display())]
pub struct PermissionError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> PermissionError + '_ {
    move |source| PermissionError {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes files this process creates from now on owner-only (umask `0o077`).
pub fn private_umask() {
    // SAFETY: umask only sets the process's file mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// What [`secure_data_dir`] had to tighten (paths whose mode was too open).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tightened {
    pub paths: Vec<PathBuf>,
}

/// Sets the private umask, creates `data_dir` (and missing parents of it are created `0700`
/// too), and brings every directory under it to `0700` and every file to `0600`. Symbolic
/// links are not followed.
pub fn secure_data_dir(data_dir: &Path) -> Result<Tightened, PermissionError> {
    private_umask();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(data_dir)
        .map_err(err(data_dir))?;
    let mut tightened = Tightened::default();
    tighten(data_dir, &mut tightened)?;
    if !tightened.paths.is_empty() {
        tracing::warn!(
            data_dir = %data_dir.display(),
            count = tightened.paths.len(),
            "data directory had files or directories others could read: made owner-only"
        );
    }
    Ok(tightened)
}

fn tighten(path: &Path, out: &mut Tightened) -> Result<(), PermissionError> {
    let meta = fs::symlink_metadata(path).map_err(err(path))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        // Group and other bits are taken away; a file's owner keeps what it had (a read-only
        // file stays read-only), a directory's owner gets rwx (it must be walked).
        let new_mode = if ft.is_dir() {
            DIR_MODE
        } else {
            mode & FILE_MODE
        };
        fs::set_permissions(path, fs::Permissions::from_mode(new_mode)).map_err(err(path))?;
        out.paths.push(path.to_path_buf());
    }
    if ft.is_dir() {
        for entry in fs::read_dir(path).map_err(err(path))? {
            let entry = entry.map_err(err(path))?;
            tighten(&entry.path(), out)?;
        }
    }
    Ok(())
}

/// Ensures `path` exists as an owner-only file (created `0600` if absent, tightened if too
/// open): SQLite then creates its `-wal` and `-shm` files with the same mode.
pub fn ensure_private_file(path: &Path) -> Result<(), PermissionError> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = fs::metadata(path).map_err(err(path))?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o600))
                    .map_err(err(path))?;
            }
            Ok(())
        }
        Err(e) => Err(err(path)(e)),
    }
}

/// `OpenOptions` that create a file owner-only.
pub fn create_private_file() -> fs::OpenOptions {
    let mut o = fs::OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn existing_open_modes_are_tightened_and_new_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(data.join("log")).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(data.join("log"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(data.join("log/seg"), b"x").unwrap();
        fs::set_permissions(data.join("log/seg"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(data.join("ro"), b"x").unwrap();
        fs::set_permissions(data.join("ro"), fs::Permissions::from_mode(0o444)).unwrap();
        let t = secure_data_dir(&data).unwrap();
        assert_eq!(t.paths.len(), 4);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("log")), 0o700);
        assert_eq!(mode(&data.join("log/seg")), 0o600);
        assert_eq!(mode(&data.join("ro")), 0o400);
        // The umask is now 077: a plain create is owner-only.
        fs::write(data.join("new"), b"x").unwrap();
        assert_eq!(mode(&data.join("new")), 0o600);
        ensure_private_file(&data.join("db")).unwrap();
        assert_eq!(mode(&data.join("db")), 0o600);
        assert!(secure_data_dir(&data).unwrap().paths.is_empty());
    }
}
