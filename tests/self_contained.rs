//! The repository carries everything it uses: no code, test, script, benchmark or document may
//! reach for a path outside it (a clone in an empty directory must work on its own). This walks
//! the tracked source tree and fails on any reference that leaves the repository.

use std::path::{Path, PathBuf};

/// Directories that hold what the project builds, runs and documents.
const ROOTS: [&str; 10] = [
    "src",
    "tests",
    "benches",
    "simulator",
    "scripts",
    "web",
    "docs",
    "fixtures",
    ".ci",
    "fuzz",
];
const TOP_FILES: [&str; 4] = ["README.md", "BENCHMARKS.md", "Cargo.toml", "package.json"];
/// Directories that are built or installed, not written by us.
const SKIP_DIRS: [&str; 4] = ["node_modules", "target", ".git", "corpus"];
const TEXT_EXTENSIONS: [&str; 13] = [
    "rs", "sh", "md", "toml", "js", "mjs", "json", "py", "html", "css", "sql", "txt", "yml",
];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) {
                text_files(&path, out);
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| TEXT_EXTENSIONS.contains(&e))
            || name == "run"
        {
            out.push(path);
        }
    }
}

/// What counts as leaving the repository, built from pieces so this file does not match itself.
fn forbidden_patterns() -> Vec<(String, &'static str)> {
    let up = "..";
    vec![
        (format!("{up}/shared"), "the sibling shared/ folder"),
        (["shared", "data/"].join("/"), "the shared data folder"),
        (["shared", "docs/"].join("/"), "the shared docs folder"),
        (
            format!("/{}/", "work"),
            "an absolute path on the build machine",
        ),
        (
            format!("/{}/", "root"),
            "an absolute path on the build machine",
        ),
    ]
}

/// A `CARGO_MANIFEST_DIR`-relative path that climbs above the repository root: from the root
/// crate any `..`, from the simulator crate two of them.
fn climbs_out(relative: &Path, line: &str) -> bool {
    let in_simulator = relative.starts_with("simulator");
    if !line.contains("CARGO_MANIFEST_DIR") && !line.contains(".join(\"..") {
        return false;
    }
    let escape = if in_simulator { "\"../.." } else { "\"..\"" };
    let escape_slash = if in_simulator { "\"../../" } else { "\"../" };
    relative.extension().is_some_and(|e| e == "rs")
        && (line.contains(escape) || line.contains(escape_slash))
}

#[test]
fn nothing_in_the_repository_reads_a_path_outside_it() {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in ROOTS {
        text_files(&root.join(dir), &mut files);
    }
    files.extend(
        TOP_FILES
            .iter()
            .map(|f| root.join(f))
            .filter(|p| p.exists()),
    );
    assert!(files.len() > 100, "walked only {} files", files.len());

    let patterns = forbidden_patterns();
    let this_file = root.join("tests/self_contained.rs");
    let mut found = Vec::new();
    for file in &files {
        if *file == this_file {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let relative = file.strip_prefix(&root).unwrap_or(file);
        for (number, line) in text.lines().enumerate() {
            for (pattern, what) in &patterns {
                if line.contains(pattern.as_str()) {
                    found.push(format!(
                        "{}:{}: {what} ({pattern}): {}",
                        relative.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
            if climbs_out(relative, line) {
                found.push(format!(
                    "{}:{}: a path above the repository root: {}",
                    relative.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "references outside the repository:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_catches_a_reference_outside() {
    let patterns = forbidden_patterns();
    let bad = format!("let p = \"{}/shared/data/x.csv\";", "..");
    assert!(patterns.iter().any(|(p, _)| bad.contains(p.as_str())));
    let climbing = format!(
        "Path::new(env!(\"CARGO_MANIFEST_DIR\")).join(\"{}/x\")",
        ".."
    );
    assert!(climbs_out(Path::new("tests/a.rs"), &climbing));
    let fine = "Path::new(env!(\"CARGO_MANIFEST_DIR\")).join(\"../tagstream/x\")";
    assert!(!climbs_out(Path::new("simulator/tests/a.rs"), fine));
}
