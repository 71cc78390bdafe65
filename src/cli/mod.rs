//! Command-line front end: one file per subcommand. Only this module and `main` print.

pub mod audit;
pub mod chat;
pub mod generate;
pub mod run;
pub mod scan;
pub mod serve;
pub mod tui;
pub mod validate;

use clap::{Parser, Subcommand};

/// Fine-tune, evaluate, quantize, export and serve open Llama-family models on data that
/// must stay in-house. Nothing phones home; the network is used only for a `pip:` model
/// download you ask for.
#[derive(Debug, Parser)]
#[command(name = "workbench", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a whole recipe: model, data governance, LoRA training, eval, merge + INT8, bench, export.
    ///
    /// Example: workbench run recipes/quickstart.toml
    Run(run::RunArgs),
    /// Run a recipe under the terminal UI (stages, loss, log); q cancels.
    ///
    /// Example: workbench tui recipes/quickstart.toml
    Tui(tui::TuiArgs),
    /// Check a recipe without running it; reports every problem at once.
    ///
    /// Example: workbench validate recipes/quickstart.toml
    Validate(validate::ValidateArgs),
    /// Generate text from a model or an exported artifact.
    ///
    /// Example: workbench generate runs/<id>/artifact --prompt "What is the capital of France?"
    Generate(generate::GenerateArgs),
    /// Scan a dataset or file (or `-` for stdin) for secrets and personal data.
    ///
    /// Example: workbench scan datasets/company/runbooks_reviews.jsonl --json findings.json
    Scan(scan::ScanArgs),
    /// Audit-trail tools.
    ///
    /// Example: workbench audit verify runs/audit.jsonl
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Chat interactively with a model or an exported artifact.
    ///
    /// Example: workbench chat runs/<id>/artifact --system "Answer briefly."
    Chat(chat::ChatArgs),
    /// Serve an artifact through an OpenAI-compatible HTTP API on localhost.
    ///
    /// Example: workbench serve runs/<id>/artifact --api-keys keys.txt --port 8080
    Serve(serve::ServeArgs),
}

/// Dispatches a parsed command; returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(a) => run::run(&a),
        Command::Validate(a) => validate::run(&a),
        Command::Tui(a) => tui::run(&a),
        Command::Generate(a) => generate::run(&a),
        Command::Serve(a) => serve::run(&a),
        Command::Chat(a) => chat::run(&a),
        Command::Scan(a) => scan::run(&a),
        Command::Audit(c) => audit::run(&c),
    }
}

/// Resolves and loads a model or artifact for the interactive commands, printing notes.
pub fn open_model(
    model: &str,
    allow_download: bool,
) -> Result<crate::pipeline::LoadedModel, crate::pipeline::PipelineError> {
    let opts = crate::model::source::ResolveOptions {
        allow_download,
        ..Default::default()
    };
    crate::pipeline::open_model_with(model, &opts, &mut StderrNotes)
}

/// Generates from `ids`, streaming the text to stdout as it arrives, then a newline.
pub fn stream_to_stdout(
    loaded: &crate::pipeline::LoadedModel,
    ids: &[u32],
    params: &crate::generate::SamplingParams,
) -> crate::generate::Generation {
    use std::io::Write;
    let mut out = std::io::stdout();
    let g = crate::generate::generate(
        &loaded.model,
        &loaded.format.tokenizer,
        ids,
        params,
        &mut |t| {
            let _ = out.write_all(t.as_bytes());
            let _ = out.flush();
        },
    );
    println!();
    g
}

/// Prints resolver notes to stderr.
pub struct StderrNotes;

impl crate::model::source::ResolveSink for StderrNotes {
    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }
}
