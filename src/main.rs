//! The `workbench` binary: parses arguments, runs the command, maps errors to exit codes.

use clap::Parser;
use workbench::cli;

fn main() {
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
