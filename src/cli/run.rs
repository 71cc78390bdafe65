//! `workbench run`: runs a recipe with a progress bar (ETA) on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::pipeline::{self, RunEvent, RunSink, Stage};
use crate::recipe::Recipe;
use crate::train::TrainEvent;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The recipe (TOML). Relative paths in it resolve against the folder above `recipes/`.
    pub recipe: PathBuf,
    /// Also write every event as a JSON line to this file.
    #[arg(long)]
    pub events: Option<PathBuf>,
}

struct CliSink {
    bar: Option<ProgressBar>,
    tty: bool,
    max_steps: usize,
    events: Option<std::fs::File>,
}

impl CliSink {
    fn line(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{s}"),
        }
    }
}

impl RunSink for CliSink {
    fn event(&mut self, e: &RunEvent) {
        if let Some(f) = &mut self.events {
            use std::io::Write;
            let _ = writeln!(f, "{}", serde_json::to_string(e).unwrap_or_default());
        }
        match e {
            RunEvent::StageStarted {
                stage,
                index,
                total,
            } => {
                eprintln!("[{index}/{total}] {}", stage.title());
                if *stage == Stage::Train && self.tty {
                    let b = ProgressBar::new(self.max_steps as u64);
                    b.set_style(
                        ProgressStyle::with_template(
                            "  {bar:30} {pos}/{len} steps  {msg}  ETA {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    self.bar = Some(b);
                }
            }
            RunEvent::Progress {
                done, total, note, ..
            } => self.line(&format!("  ({done}/{total}) {note}")),
            RunEvent::Info { line, .. } => self.line(&format!("  {line}")),
            RunEvent::Warning { line, .. } => self.line(&format!("  warning: {line}")),
            RunEvent::StageFinished { seconds, .. } => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                eprintln!("  done in {seconds:.1} s");
            }
            RunEvent::Train(TrainEvent::Step {
                step,
                loss,
                lr,
                grad_norm,
                tokens,
                seconds,
            }) => match &self.bar {
                Some(b) => {
                    b.set_position(*step as u64);
                    b.set_message(format!(
                        "loss {loss:.4}  lr {lr:.2e}  |g| {grad_norm:.2}  {:.0} answer tok/s",
                        *tokens as f64 / seconds.max(1e-9)
                    ));
                }
                None => eprintln!(
                    "  step {step}/{}: loss {loss:.4} lr {lr:.2e} |g| {grad_norm:.2} ({seconds:.1} s)",
                    self.max_steps
                ),
            },
            RunEvent::Train(TrainEvent::Validation { step, loss }) => self.line(&format!(
                "  step {step}: validation loss {loss:.4} (ppl {:.2})",
                loss.exp()
            )),
        }
    }
}

/// Exit status after a second Ctrl-C (128 + SIGINT).
const EXIT_INTERRUPTED: i32 = 130;

/// First Ctrl-C: ask the pipeline to stop at the next step boundary (nothing half-written is
/// left: the artifact is only renamed into place when complete). Second Ctrl-C: exit now.
fn watch_ctrl_c(cancel: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.store(true, Ordering::Relaxed);
                eprintln!("\ncancelling after the current step (Ctrl-C again to exit now)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(EXIT_INTERRUPTED);
                }
            }
        });
    });
}

pub fn run(args: &RunArgs) -> anyhow::Result<i32> {
    let recipe = Recipe::load(&args.recipe)?;
    let events = match &args.events {
        Some(p) => {
            Some(std::fs::File::create(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let mut sink = CliSink {
        bar: None,
        tty: std::io::stderr().is_terminal(),
        max_steps: recipe.training.max_steps,
        events,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(cancel.clone());
    let s = pipeline::run(&recipe, &args.recipe, &mut sink, &cancel)?;
    println!("\nrun {} finished in {:.0} s", s.run_id, s.seconds);
    println!(
        "  data: {} rows in, {} used; highest level trained: {}",
        s.governance.rows_in,
        s.governance.rows_used,
        s.governance
            .highest_level_used
            .map_or("none".into(), |l| l.to_string())
    );
    println!(
        "  validation perplexity: {:.3} -> {:.3}",
        s.val_ppl_before, s.val_ppl_after
    );
    if let (Some(a), Some(b)) = (s.heldout_ppl_before, s.heldout_ppl_after) {
        println!(
            "  held-out perplexity:   {a:.3} -> {b:.3}{}",
            s.heldout_ppl_int8
                .map(|q| format!(" (INT8 {q:.3})"))
                .unwrap_or_default()
        );
    }
    if let Some(q) = s.int8_weight_mib {
        println!(
            "  weights: f32 {:.1} MiB, INT8 {:.1} MiB ({:.2}x smaller)",
            s.f32_weight_mib,
            q,
            s.f32_weight_mib / q
        );
    }
    for b in &s.bench {
        println!(
            "  {}: TTFT p50 {:.1} ms, decode {:.1} tok/s (p95 {:.2} ms/token)",
            b.label, b.ttft_ms_p50, b.decode_tokens_per_s, b.decode_ms_per_token_p95
        );
    }
    for (b, a) in s.prompts_before.iter().zip(&s.prompts_after) {
        println!(
            "  {:?}\n    before: {:?}\n    after:  {:?}",
            b.prompt, b.answer, a.answer
        );
    }
    println!("  artifact: {}", s.artifact.display());
    println!(
        "  serve it: workbench serve {} --insecure-no-auth",
        s.artifact.display()
    );
    Ok(0)
}
