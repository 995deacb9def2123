//! The module table of docs/architecture.md, enforced: every `crate::…` path (and every `super::…`
//! path that leaves its top-level module) in the library's production code must name a module
//! that the importing module's row lists under "may import", and never one under "may NOT import".
//!
//! The rules are parsed from the doc's table itself, so the doc cannot drift from the code: to
//! change who may import whom, change the table. Code under `#[cfg(test)]` is not checked (tests
//! sit above everything, like `tests/`), nor is `src/main.rs` (the binary, which may use anything).
//! Known imports against the flow that are being removed are in [`KNOWN`], each of which must
//! still occur (a fixed one must be taken off the list).
//!
//! This test reads only files of the repository and needs nothing but std, so it can also be
//! built alone: `CARGO_MANIFEST_DIR=$PWD rustc --edition 2021 --test tests/architecture.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const DOC: &str = "docs/architecture.md";

/// Imports against the flow that are known and listed in the doc: (importing file, imported
/// module path). Each one names who removes it.
const KNOWN: &[(&str, &str)] = &[];

/// One module's row: what it may import and what it may not (module paths such as `store` or
/// `store::metadata`); `any` = may import every module.
#[derive(Debug, Default)]
struct Row {
    any: bool,
    may: BTreeSet<String>,
    may_not: BTreeSet<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The names in backticks of one table cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The rows of the "Modules" table: `| `module` | owns | may import | may NOT import |`.
fn parse_table(doc: &str) -> BTreeMap<String, Row> {
    let start = doc
        .find("\n## Modules")
        .unwrap_or_else(|| panic!("{DOC} has no `## Modules` section"));
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in doc[start + 1..].lines().skip(1) {
        if line.starts_with("## ") {
            break;
        }
        let line = line.trim();
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        in_table = true;
        let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
        let Some(module) = cells.first().and_then(|c| ticked(c).into_iter().next()) else {
            continue; // the header and the separator
        };
        assert_eq!(
            cells.len(),
            4,
            "{DOC}: the row of `{module}` must have 4 cells: {line}"
        );
        let row = Row {
            any: cells[2].contains("any module"),
            may: ticked(cells[2]).into_iter().collect(),
            may_not: ticked(cells[3]).into_iter().collect(),
        };
        let both: Vec<_> = row.may.intersection(&row.may_not).collect();
        assert!(
            both.is_empty(),
            "{DOC}: `{module}` both may and may not import {both:?}"
        );
        assert!(
            rows.insert(module.clone(), row).is_none(),
            "{DOC}: `{module}` has two rows"
        );
    }
    assert!(!rows.is_empty(), "{DOC}: the Modules table has no rows");
    rows
}

/// Rust source with comments, string and character literals blanked (newlines kept, so line
/// numbers stay right).
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &str| out.extend(s.chars().filter(|&c| c == '\n'));
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let rest = &src[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            // Block comments nest in Rust.
            let (mut depth, mut j) = (0usize, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &src[i..j.min(b.len())]);
            i = j.min(b.len());
        } else if (b[i] == b'r' || (b[i] == b'b' && rest[1..].starts_with('r')))
            && (i == 0 || !ident(b[i - 1]))
            && {
                let after_r = if b[i] == b'b' { 2 } else { 1 };
                let hashes = rest[after_r..].bytes().take_while(|&c| c == b'#').count();
                rest[after_r + hashes..].starts_with('"')
            }
        {
            let after_r = if b[i] == b'b' { 2 } else { 1 };
            let hashes = rest[after_r..].bytes().take_while(|&c| c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = after_r + hashes + 1;
            let end = rest[body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            blank(&mut out, &src[i..end]);
            i = end;
        } else if b[i] == b'\'' {
            // A character literal ('a', '\n', '\u{..}', '"'); otherwise a lifetime.
            let lit = if rest[1..].starts_with('\\') {
                // Skip the escaped character, so that '\'' ends at its last quote.
                rest.get(3..).and_then(|r| r.find('\'')).map(|e| e + 4)
            } else {
                let c = rest[1..].chars().next().map_or(0, char::len_utf8);
                rest[1 + c..].starts_with('\'').then_some(c + 2)
            };
            match lit {
                Some(len) => i += len,
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Tokens: identifiers, `::`, and single punctuation characters, each with its line.
fn tokens(code: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut line = 1;
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let s: String = chars[i..]
                .iter()
                .take_while(|c| c.is_alphanumeric() || **c == '_')
                .collect();
            i += s.chars().count();
            out.push((s, line));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(("::".into(), line));
            i += 2;
        } else {
            out.push((c.to_string(), line));
            i += 1;
        }
    }
    out
}

/// The end (exclusive) of the item that starts at `i`: its first `;` at depth 0 before any
/// brace, or its matching `}`.
fn item_end(t: &[(String, usize)], mut i: usize) -> usize {
    let mut depth = 0i32;
    while i < t.len() {
        match t[i].0.as_str() {
            ";" if depth == 0 => return i + 1,
            "{" | "(" | "[" => depth += 1,
            "}" | ")" | "]" => {
                depth -= 1;
                if depth == 0 && t[i].0 == "}" {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    t.len()
}

/// Paths of the use-tree or path expression that starts at `i` (after `crate::`), with the line
/// of each: `store::{metadata::Metadata, trails}` gives `store::metadata::Metadata` and
/// `store::trails`.
fn paths(
    t: &[(String, usize)],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) {
    let mut path = prefix;
    while let Some((tok, line)) = t.get(i) {
        if tok == "{" {
            // A group: each comma-separated subtree at depth 1.
            let mut j = i + 1;
            loop {
                paths(t, j, path.clone(), out);
                // Skip to the next ',' or the closing '}' at this depth.
                let mut depth = 0;
                while j < t.len() {
                    match t[j].0.as_str() {
                        "{" => depth += 1,
                        "}" if depth == 0 => return,
                        "}" => depth -= 1,
                        "," if depth == 0 => break,
                        _ => {}
                    }
                    j += 1;
                }
                j += 1;
                if j >= t.len() {
                    return;
                }
            }
        }
        if tok.chars().all(|c| c.is_alphanumeric() || c == '_') && tok != "self" && tok != "as" {
            path.push(tok.clone());
            if t.get(i + 1).map(|x| x.0.as_str()) == Some("::") {
                i += 2;
                continue;
            }
        }
        if !path.is_empty() {
            out.push((path, *line));
        }
        break;
    }
}

/// The imports of one file: (path from the crate root, line), production code only.
fn imports(file_module: &[String], src: &str) -> Vec<(Vec<String>, usize)> {
    let t = tokens(&strip(src));
    let mut out = Vec::new();
    // Inline `mod name {` blocks, with the token index where each ends.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut i = 0;
    while i < t.len() {
        while inline.last().is_some_and(|m| i >= m.1) {
            inline.pop();
        }
        let tok = t[i].0.as_str();
        let prev = if i > 0 { t[i - 1].0.as_str() } else { "" };
        // `#[cfg(test)]` and the item it guards are skipped whole.
        if tok == "#"
            && t.get(i + 1..i + 7).is_some_and(|w| {
                w.iter()
                    .map(|x| x.0.as_str())
                    .eq(["[", "cfg", "(", "test", ")", "]"])
            })
        {
            let mut j = i + 7;
            while t.get(j).is_some_and(|x| x.0 == "#") {
                j = t[j..]
                    .iter()
                    .position(|x| x.0 == "]")
                    .map_or(t.len(), |p| j + p + 1);
            }
            i = item_end(&t, j);
            continue;
        }
        if tok == "mod" && t.get(i + 2).is_some_and(|x| x.0 == "{") && prev != "::" {
            let end = item_end(&t, i + 2);
            inline.push((t[i + 1].0.clone(), end));
            i += 3;
            continue;
        }
        let after_path_sep = prev == "::" || prev == "$";
        if !after_path_sep && t.get(i + 1).is_some_and(|x| x.0 == "::") {
            if tok == "crate" {
                paths(&t, i + 2, Vec::new(), &mut out);
            } else if tok == "super" {
                // Resolve `super::super::…` against the module this code is in.
                let mut here: Vec<String> = file_module.to_vec();
                here.extend(inline.iter().map(|m| m.0.clone()));
                let mut j = i;
                while t.get(j).is_some_and(|x| x.0 == "super")
                    && t.get(j + 1).is_some_and(|x| x.0 == "::")
                {
                    here.pop();
                    j += 2;
                }
                paths(&t, j, here, &mut out);
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// `src/store/metadata/mod.rs` → `store::metadata`; `src/lib.rs` → the root.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .strip_prefix("src")
        .unwrap_or(rel)
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Library source files, without `src/main.rs` and without files that a `#[cfg(test)] mod x;`
/// declares.
fn sources(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let mut all = Vec::new();
    walk(&root.join("src"), &mut all);
    let mut test_only = BTreeSet::new();
    for p in &all {
        let text = fs::read_to_string(p).unwrap_or_default();
        let t = tokens(&strip(&text));
        for w in t.windows(10) {
            let s: Vec<&str> = w.iter().map(|x| x.0.as_str()).collect();
            if s[..9] == ["#", "[", "cfg", "(", "test", ")", "]", "mod", s[8]] && s[9] == ";" {
                let dir = if p
                    .file_name()
                    .is_some_and(|f| f == "mod.rs" || f == "lib.rs")
                {
                    p.parent().map(Path::to_path_buf)
                } else {
                    Some(p.with_extension(""))
                };
                if let Some(dir) = dir {
                    test_only.insert(dir.join(format!("{}.rs", s[8])));
                    test_only.insert(dir.join(s[8]).join("mod.rs"));
                }
            }
        }
    }
    all.into_iter()
        .filter(|p| !test_only.contains(p) && *p != root.join("src/main.rs"))
        .collect()
}

/// The longest entry of `names` that `path` starts with.
fn longest<'a>(names: &'a BTreeSet<String>, path: &[String]) -> Option<&'a String> {
    names
        .iter()
        .filter(|n| {
            let segs: Vec<&str> = n.split("::").collect();
            segs.len() <= path.len() && segs.iter().zip(path).all(|(a, b)| *a == b.as_str())
        })
        .max_by_key(|n| n.len())
}

#[test]
fn imports_follow_the_module_table() {
    let root = root();
    let doc = fs::read_to_string(root.join(DOC)).unwrap_or_else(|e| panic!("{DOC}: {e}"));
    let table = parse_table(&doc);

    // Every top-level module of the library has a row, and every row is a module.
    let lib = fs::read_to_string(root.join("src/lib.rs")).expect("src/lib.rs");
    let declared: BTreeSet<String> = tokens(&strip(&lib))
        .windows(3)
        .filter(|w| w[0].0 == "mod" && w[2].0 == ";")
        .map(|w| w[1].0.clone())
        .collect();
    let rows: BTreeSet<String> = table.keys().cloned().collect();
    assert_eq!(
        rows, declared,
        "{DOC}: the Modules table must have one row per module of src/lib.rs"
    );
    // Every name in an import column is a module that exists.
    for (module, row) in &table {
        for name in row.may.iter().chain(&row.may_not) {
            let rel: PathBuf = name.split("::").collect();
            let exists = root.join("src").join(&rel).with_extension("rs").is_file()
                || root.join("src").join(&rel).join("mod.rs").is_file();
            assert!(
                exists,
                "{DOC}: row `{module}` names `{name}`, which is not a module"
            );
        }
    }

    let mut faults = Vec::new();
    let mut known_seen = BTreeSet::new();
    for file in sources(&root) {
        let rel = file
            .strip_prefix(&root)
            .expect("under the root")
            .to_path_buf();
        let rel_str = rel.to_string_lossy().replace('\\', "/");
        let module = module_of(&rel);
        let Some(top) = module.first() else { continue };
        let Some(row) = table.get(top) else { continue };
        let text = fs::read_to_string(&file).expect("source file");
        for (path, line) in imports(&module, &text) {
            if path.first() == Some(top) || row.any {
                continue;
            }
            let allowed = longest(&row.may, &path);
            let denied = longest(&row.may_not, &path);
            let verdict = match (allowed, denied) {
                (Some(a), Some(d)) if a.len() > d.len() => None,
                (_, Some(d)) => Some(format!("its row says it may NOT import `{d}`")),
                (Some(_), None) => None,
                (None, None) => Some("that is not in its row's \"may import\" column".to_string()),
            };
            let Some(why) = verdict else { continue };
            if let Some(k) = KNOWN.iter().find(|(f, m)| {
                *f == rel_str && longest(&BTreeSet::from([m.to_string()]), &path).is_some()
            }) {
                known_seen.insert(*k);
                continue;
            }
            faults.push(format!(
                "{rel_str}:{line}: `{top}` imports `crate::{}`: {why} ({DOC})",
                path.join("::")
            ));
        }
    }
    for k in KNOWN.iter().filter(|k| !known_seen.contains(k)) {
        faults.push(format!(
            "{}: the known exception `{}` no longer occurs: take it off KNOWN in \
             tests/architecture.rs and off the doc's list",
            k.0, k.1
        ));
    }
    assert!(
        faults.is_empty(),
        "{} import(s) against the module table:\n{}",
        faults.len(),
        faults.join("\n")
    );
}

#[test]
fn the_import_reader_sees_groups_super_and_skips_tests_and_comments() {
    let src = r#"
//! use crate::api::x;
use crate::store::{metadata::{Metadata, Role}, trails, self};
use super::super::log::LogReader;
fn f() { let s = "crate::api::y"; let c = '"'; crate::wire::frame::check(); }
mod inner { use super::super::rules::hits; }
#[cfg(test)]
mod tests { use crate::server::run; }
/* crate::api::z */
"#;
    let got: Vec<String> = imports(&["pipeline".into(), "driver".into()], src)
        .into_iter()
        .map(|(p, l)| format!("{}@{l}", p.join("::")))
        .collect();
    assert_eq!(
        got,
        [
            "store::metadata::Metadata@3",
            "store::metadata::Role@3",
            "store::trails@3",
            "store@3",
            "log::LogReader@4",
            "wire::frame::check@5",
            "pipeline::rules::hits@6",
        ]
    );
}
