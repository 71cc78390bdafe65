//! The `workbench` binary: parses arguments, runs the command, maps errors to exit codes.

use clap::Parser;
use workbench::cli;

/// Exit status for any error (bad input, failed stage).
const EXIT_ERROR: i32 = 2;

/// The error and its causes on one line, skipping a cause whose text the message above it
/// already includes (library errors embed their source in their own message).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn main() {
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            std::process::exit(EXIT_ERROR);
        }
    }
}
