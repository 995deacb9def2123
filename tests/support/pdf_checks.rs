//! Reading a PDF as its recipient does, with poppler-utils and qpdf
//! (`scripts/documents-setup.sh`): its text, each page rendered, its structure checked.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn tool(name: &str, args: &[&str]) -> std::process::Output {
    Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} is missing ({e}): run scripts/documents-setup.sh"))
}

/// The PDF's text, laid out, with runs of white space folded to one space.
pub fn pdf_flat_text(pdf: &Path) -> String {
    let out = tool("pdftotext", &["-layout", pdf.to_str().unwrap(), "-"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders every page to greyscale in `dir`; the share of non-white pixels of each page.
pub fn page_ink(pdf: &Path, dir: &Path) -> Vec<f64> {
    let prefix = dir.join("page");
    let out = tool(
        "pdftoppm",
        &[
            "-gray",
            "-r",
            "40",
            pdf.to_str().unwrap(),
            prefix.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "pdftoppm: {out:?}");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pgm"))
        .collect();
    pages.sort();
    pages
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap();
            // Binary PGM: "P5\n<w> <h>\n<max>\n" then one byte a pixel.
            let mut fields = 0;
            let mut at = 0;
            while fields < 4 {
                while bytes[at].is_ascii_whitespace() {
                    at += 1;
                }
                while !bytes[at].is_ascii_whitespace() {
                    at += 1;
                }
                fields += 1;
            }
            let pixels = &bytes[at + 1..];
            pixels.iter().filter(|v| **v < 250).count() as f64 / pixels.len() as f64
        })
        .collect()
}

/// `qpdf --check` passes.
pub fn assert_well_formed(pdf: &Path) {
    let check = tool("qpdf", &["--check", pdf.to_str().unwrap()]);
    assert!(check.status.success(), "qpdf --check: {check:?}");
}

/// A copy of the demo street archive marked as real streets (the demo's own is synthetic and is
/// never drawn into evidence), so documents' maps composite street tiles.
pub fn real_street_archive(dir: &Path) -> PathBuf {
    let path = dir.join("streets.mbtiles");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/basemap/demo-streets.mbtiles"),
        &path,
    )
    .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE metadata SET value = 'false' WHERE name = 'synthetic';
         UPDATE metadata SET value = 'Test streets' WHERE name = 'attribution';",
    )
    .unwrap();
    path
}

/// `tagstream report verify MANIFEST`: its output (success when every listed file matches).
pub fn verify_manifest(manifest: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tagstream"))
        .args(["report", "verify"])
        .arg(manifest)
        .output()
        .unwrap()
}

/// `tagstream report ARGS… --data-dir DATA --out OUT [--config CONFIG]` on a stopped server's
/// data, asserted to succeed; then each `(file name, bytes)` in OUT asserted to be those bytes.
pub fn assert_offline_report(
    args: &[&str],
    data: &Path,
    config: Option<&Path>,
    out: &Path,
    expected: &[(String, &[u8])],
) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tagstream"));
    command
        .arg("report")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--out")
        .arg(out);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let made = command.output().unwrap();
    assert!(made.status.success(), "{made:?}");
    for (name, bytes) in expected {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), bytes, "{name}");
    }
}
