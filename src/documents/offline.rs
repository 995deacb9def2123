//! `tagstream report …` over a stopped server's data directory: the same documents the API
//! serves, from the same stores, with the same settings (config file), so they are byte for byte
//! what the server would have given. Holds the data directory's lock; audits each document as
//! `cli:$USER` with the purpose given.

use super::hit_pack::{hit_pack, HitPackFiles, DEFAULT_DECLARATION};
use super::map_figure::TileSource;
use super::sources::HitPackSources;
use super::DocumentError;
use crate::config::ServerConfig;
use crate::data_lock::{lock_data_dir, LockError};
use crate::store::crime_store::CrimeStore;
use crate::store::metadata::{Metadata, NewAuditEntry};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OfflineReportError {
    #[error("{0} is not a tagstream data directory (no metadata database inside)")]
    NotADataDir(PathBuf),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("hit '{0}' not found")]
    HitNotFound(String),
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Metadata(#[from] crate::store::metadata::MetadataError),
    #[error(transparent)]
    Crimes(#[from] crate::store::crime_store::CrimeStoreError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes `files` into `out_dir` (created if missing): the PDF, the JSON and
/// `<hit>-manifest.json`. The paths written.
pub fn write_pack(
    files: &HitPackFiles,
    hit: &str,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, OfflineReportError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OfflineReportError::Write { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(failed(out_dir))?;
    let mut written = Vec::new();
    for (name, bytes) in [
        (files.manifest.files[0].name.clone(), files.pdf.clone()),
        (files.manifest.files[1].name.clone(), files.json.clone()),
        (format!("{hit}-manifest.json"), files.manifest.to_bytes()),
    ] {
        let path = out_dir.join(name);
        std::fs::write(&path, bytes).map_err(failed(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// `tagstream report hit-pack`: the pack of hit `hit` from `data_dir`, audited, into `out_dir`.
pub fn hit_pack_offline(
    data_dir: &Path,
    config: &ServerConfig,
    tiles: Option<&dyn TileSource>,
    hit: &str,
    purpose: &str,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, OfflineReportError> {
    if !data_dir.join("metadata.sqlite3").is_file() {
        return Err(OfflineReportError::NotADataDir(data_dir.to_path_buf()));
    }
    let _lock = lock_data_dir(data_dir)?;
    let metadata = Metadata::open(data_dir)?;
    let crimes = CrimeStore::open(data_dir)?;
    let stored = crimes
        .hit(hit)?
        .ok_or_else(|| OfflineReportError::HitNotFound(hit.to_string()))?;
    metadata.audit(&NewAuditEntry {
        t_ms: chrono::Utc::now().timestamp_millis(),
        user_name: format!(
            "cli:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        ),
        role: "admin".into(),
        action: "documents.hit_pack".into(),
        person: Some(stored.hit.person.clone()),
        format: Some("pack".into()),
        purpose: Some(purpose.to_string()),
        detail: Some(format!("hit {hit} to {}", out_dir.display())),
        ..NewAuditEntry::default()
    })?;
    let sources = HitPackSources::read(&crimes, &metadata, stored)?;
    let declaration = config
        .documents
        .witness_declaration
        .clone()
        .unwrap_or_else(|| DEFAULT_DECLARATION.to_string());
    let files = hit_pack(&sources.input(&declaration, tiles))?;
    write_pack(&files, hit, out_dir)
}
