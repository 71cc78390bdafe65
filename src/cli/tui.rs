//! `workbench tui`: runs a recipe under the terminal UI. The pipeline runs on its own thread
//! and reports through a channel; `q` cancels it between training steps. The terminal is
//! restored on exit, on error and on panic.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};

use crate::pipeline::{self, RunEvent, RunSink};
use crate::recipe::Recipe;
use crate::tui::{Action, App, draw};

/// How often the screen refreshes while waiting for events.
const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, clap::Args)]
pub struct TuiArgs {
    /// The recipe (TOML) to run.
    pub recipe: PathBuf,
}

struct ChannelSink(mpsc::Sender<Action>);

impl RunSink for ChannelSink {
    fn event(&mut self, e: &RunEvent) {
        let _ = self.0.send(Action::Run(e.clone()));
    }
}

/// Restores the terminal when dropped (normal exit and errors; ratatui's panic hook covers panics).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub fn run(a: &TuiArgs) -> anyhow::Result<i32> {
    use std::io::IsTerminal;
    let recipe = Recipe::load(&a.recipe)?;
    if !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "`workbench tui` needs a terminal; use `workbench run {}` for plain output",
            a.recipe.display()
        );
    }
    let (tx, rx) = mpsc::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let worker = {
        let (recipe, path, cancel, tx) =
            (recipe.clone(), a.recipe.clone(), cancel.clone(), tx.clone());
        std::thread::spawn(move || {
            let mut sink = ChannelSink(tx.clone());
            let result = pipeline::run(&recipe, &path, &mut sink, &cancel)
                .map(|s| {
                    format!(
                        "{} in {:.0} s, artifact {}",
                        s.run_id,
                        s.seconds,
                        s.artifact.display()
                    )
                })
                .map_err(|e| e.to_string());
            let _ = tx.send(Action::Finished(result));
        })
    };
    let mut app = App::new(&recipe.run.name, recipe.training.max_steps);
    let mut terminal = ratatui::try_init()?;
    let _guard = TerminalGuard;
    loop {
        while let Ok(action) = rx.try_recv() {
            app.update(action);
        }
        terminal.draw(|f| draw(f, &app))?;
        if event::poll(TICK)? {
            if let Event::Key(k) = event::read()? {
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => {
                        if app.outcome.is_some() {
                            break;
                        }
                        cancel.store(true, Ordering::Relaxed);
                        app.update(Action::Cancel);
                    }
                    KeyCode::Up => app.update(Action::Scroll(1)),
                    KeyCode::Down => app.update(Action::Scroll(-1)),
                    _ => {}
                }
            }
        }
        if app.cancelling && app.outcome.is_some() {
            break;
        }
    }
    drop(_guard);
    let _ = worker.join();
    Ok(match &app.outcome {
        Some(Ok(s)) => {
            println!("{s}");
            0
        }
        Some(Err(e)) => {
            eprintln!("error: {e}");
            2
        }
        None => 1,
    })
}
