//! `workbench audit`: inspect the hash-chained audit trail.

use std::path::PathBuf;

use anyhow::Result;

use crate::audit::verify;

/// Subcommands of `workbench audit`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain of an audit log; names the first edited, inserted, reordered
    /// or deleted line. Exit code 1 if the chain is broken.
    #[command(after_help = "Example:\n  workbench audit verify runs/audit.jsonl")]
    Verify {
        /// The audit log (JSON lines).
        log: PathBuf,
    },
}

/// Run an audit subcommand; returns the process exit code.
pub fn run(cmd: &AuditCommand) -> Result<i32> {
    match cmd {
        AuditCommand::Verify { log } => {
            let report = verify(log)?;
            match report.first_bad {
                None => {
                    println!("ok: {} lines", report.lines);
                    println!(
                        "(a hash chain cannot see lines cut from its end: compare the line count with a copy kept elsewhere)"
                    );
                    Ok(0)
                }
                Some((line, why)) => {
                    println!("FAILED at line {line}: {why}");
                    Ok(1)
                }
            }
        }
    }
}
