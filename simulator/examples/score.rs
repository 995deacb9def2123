//! Scores a tagstream outputs directory against a tagsim truth file until `tagstream score` is
//! wired: `cargo run -p tagsim --example score -- TRUTH.jsonl OUTPUTS_DIR [TOLERANCE_S] [--json]`.

use std::path::PathBuf;
use std::process::ExitCode;
use tagstream::score::{run_score, DEFAULT_TOLERANCE_MS};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let (Some(truth), Some(outputs)) = (pos.first(), pos.get(1)) else {
        eprintln!("usage: score TRUTH.jsonl OUTPUTS_DIR [TOLERANCE_S] [--json]");
        return ExitCode::from(2);
    };
    let tolerance_ms = pos
        .get(2)
        .and_then(|s| s.parse::<i64>().ok())
        .map_or(DEFAULT_TOLERANCE_MS, |s| s * 1000);
    match run_score(&PathBuf::from(truth), &PathBuf::from(outputs), tolerance_ms) {
        Ok(r) => {
            println!("{}", if json { r.to_json() } else { r.to_table() });
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("score: {e}");
            ExitCode::FAILURE
        }
    }
}
