//! A document's manifest: the SHA-256 of each file made (PDF, JSON) and of each input it was
//! built from, with the inputs identified by what survives log compaction and the cluster log
//! (activation, tag, event time; crime reference and version), never by a log offset. Anyone
//! holding the files can show they are unchanged (`verify`); while the data is held,
//! regenerating gives the same bytes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One file a document consists of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

impl ManifestFile {
    pub fn of(name: String, bytes: &[u8]) -> ManifestFile {
        ManifestFile {
            name,
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
        }
    }
}

/// A document's manifest (`<name>-manifest.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    /// `hit_pack`, `breach_report` or `sober_day_report`.
    pub document: String,
    pub generator: String,
    pub layout_version: u32,
    /// What the document is about (hit, alert, person and period).
    pub subject: Value,
    pub files: Vec<ManifestFile>,
    pub inputs: Value,
}

impl Manifest {
    /// The manifest as its file holds it (pretty JSON, a final newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// Why a set of files does not match its manifest.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: cannot read it: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a tagstream manifest: {source}")]
    NotAManifest {
        path: String,
        source: serde_json::Error,
    },
    #[error("{name}: SHA-256 {found}, the manifest says {expected}: the file has changed since it was made")]
    Changed {
        name: String,
        expected: String,
        found: String,
    },
    #[error("{name}: the manifest names a file outside its own folder")]
    Unsafe { name: String },
}

/// Checks every file the manifest at `manifest_path` lists, in the manifest's folder; the names
/// of the files checked.
pub fn verify(manifest_path: &Path) -> Result<Vec<String>, VerifyError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| VerifyError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let manifest: Manifest = serde_json::from_slice(&read(manifest_path)?).map_err(|source| {
        VerifyError::NotAManifest {
            path: manifest_path.display().to_string(),
            source,
        }
    })?;
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let mut checked = Vec::new();
    for file in &manifest.files {
        if file.name.contains('/') || file.name.contains('\\') || file.name.starts_with('.') {
            return Err(VerifyError::Unsafe {
                name: file.name.clone(),
            });
        }
        let found = sha256_hex(&read(&dir.join(&file.name))?);
        if found != file.sha256 {
            return Err(VerifyError::Changed {
                name: file.name.clone(),
                expected: file.sha256.clone(),
                found,
            });
        }
        checked.push(file.name.clone());
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_fails_verification_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.pdf"), b"%PDF-1.7 one").unwrap();
        let manifest = Manifest {
            manifest_version: 1,
            document: "hit_pack".into(),
            generator: "test".into(),
            layout_version: 1,
            subject: Value::Null,
            files: vec![ManifestFile::of("a.pdf".into(), b"%PDF-1.7 one")],
            inputs: Value::Null,
        };
        let path = dir.path().join("m.json");
        std::fs::write(&path, manifest.to_bytes()).unwrap();
        assert_eq!(verify(&path).unwrap(), ["a.pdf"]);
        std::fs::write(dir.path().join("a.pdf"), b"%PDF-1.7 two").unwrap();
        let err = verify(&path).unwrap_err().to_string();
        assert!(err.contains("a.pdf") && err.contains("changed"), "{err}");
    }
}
