//! The terminal UI over a run: stage list with status and timings, training progress with a
//! loss sparkline, validation losses, a log pane and the final summary. State changes only
//! through [`Action`]s; [`draw`] is a pure function of [`App`], so whole screens are tested
//! with ratatui's `TestBackend`.

use std::collections::VecDeque;

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, List, ListItem, Paragraph, Sparkline, Wrap};

use crate::pipeline::{RunEvent, Stage};
use crate::train::TrainEvent;

/// Log lines kept on screen.
const LOG_LINES: usize = 200;

/// Everything that can change the UI state.
#[derive(Debug, Clone)]
pub enum Action {
    /// An event from the running pipeline.
    Run(RunEvent),
    /// The pipeline ended: a summary line, or the error.
    Finished(Result<String, String>),
    /// The user asked to stop the run.
    Cancel,
    /// Scroll the log (positive = older lines).
    Scroll(i32),
}

/// Status of one stage.
#[derive(Debug, Clone, PartialEq)]
pub enum StageStatus {
    Pending,
    Running,
    Done(f64),
    Failed,
}

/// The UI state.
#[derive(Debug, Clone)]
pub struct App {
    pub title: String,
    pub stages: Vec<(Stage, StageStatus)>,
    pub max_steps: usize,
    pub step: usize,
    pub losses: Vec<f64>,
    pub validation: Vec<(usize, f64)>,
    pub log: VecDeque<String>,
    pub scroll: usize,
    pub outcome: Option<Result<String, String>>,
    pub cancelling: bool,
}

impl App {
    /// A fresh UI for a run of `max_steps` training steps.
    pub fn new(title: &str, max_steps: usize) -> Self {
        Self {
            title: title.to_string(),
            stages: Stage::ALL
                .iter()
                .map(|s| (*s, StageStatus::Pending))
                .collect(),
            max_steps,
            step: 0,
            losses: Vec::new(),
            validation: Vec::new(),
            log: VecDeque::new(),
            scroll: 0,
            outcome: None,
            cancelling: false,
        }
    }

    fn push_log(&mut self, line: String) {
        self.log.push_back(line);
        while self.log.len() > LOG_LINES {
            self.log.pop_front();
        }
    }

    fn set(&mut self, stage: Stage, status: StageStatus) {
        if let Some(s) = self.stages.iter_mut().find(|(st, _)| *st == stage) {
            s.1 = status;
        }
    }

    /// Applies one action.
    pub fn update(&mut self, action: Action) {
        match action {
            Action::Run(RunEvent::StageStarted { stage, .. }) => {
                self.set(stage, StageStatus::Running)
            }
            Action::Run(RunEvent::StageFinished { stage, seconds }) => {
                self.set(stage, StageStatus::Done(seconds))
            }
            Action::Run(RunEvent::Progress { note, .. }) => self.push_log(note),
            Action::Run(RunEvent::Info { line, .. }) => self.push_log(line),
            Action::Run(RunEvent::Warning { line, .. }) => {
                self.push_log(format!("warning: {line}"))
            }
            Action::Run(RunEvent::Train(TrainEvent::Step { step, loss, .. })) => {
                self.step = step;
                self.losses.push(loss);
            }
            Action::Run(RunEvent::Train(TrainEvent::Validation { step, loss })) => {
                self.validation.push((step, loss));
                self.push_log(format!("step {step}: validation loss {loss:.4}"));
            }
            Action::Finished(result) => {
                if result.is_err() {
                    if let Some(s) = self
                        .stages
                        .iter_mut()
                        .find(|(_, st)| *st == StageStatus::Running)
                    {
                        s.1 = StageStatus::Failed;
                    }
                }
                self.outcome = Some(result);
            }
            Action::Cancel => self.cancelling = true,
            Action::Scroll(d) => {
                let max = self.log.len().saturating_sub(1);
                self.scroll = (self.scroll as i64 + i64::from(d)).clamp(0, max as i64) as usize;
            }
        }
    }
}

fn stage_line(stage: Stage, status: &StageStatus) -> ListItem<'static> {
    let (mark, style) = match status {
        StageStatus::Pending => ("  ", Style::default().fg(Color::DarkGray)),
        StageStatus::Running => (
            "->",
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ),
        StageStatus::Done(_) => ("ok", Style::default().fg(Color::Green)),
        StageStatus::Failed => ("!!", Style::default().fg(Color::Red)),
    };
    let time = match status {
        StageStatus::Done(s) => format!("{s:>7.1} s"),
        _ => String::new(),
    };
    ListItem::new(Line::from(vec![
        Span::styled(format!("{mark} {:<16}", stage.title()), style),
        Span::raw(time),
    ]))
}

/// Draws the whole screen from the state.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(10),
            Constraint::Length(3),
            Constraint::Min(4),
            Constraint::Length(3),
        ])
        .split(area);
    let top = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Length(30), Constraint::Min(20)])
        .split(rows[0]);
    let stages: Vec<ListItem> = app
        .stages
        .iter()
        .map(|(s, st)| stage_line(*s, st))
        .collect();
    frame.render_widget(
        List::new(stages).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {} ", app.title)),
        ),
        top[0],
    );
    let data: Vec<u64> = app
        .losses
        .iter()
        .map(|l| (l * 1000.0).max(0.0) as u64)
        .collect();
    let last = app
        .losses
        .last()
        .map_or("-".to_string(), |l| format!("{l:.4}"));
    let val = app
        .validation
        .last()
        .map_or("-".to_string(), |(s, l)| format!("{l:.4} @ {s}"));
    frame.render_widget(
        Sparkline::default()
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(format!(" train loss {last}  validation {val} ")),
            )
            .data(&data)
            .style(Style::default().fg(Color::Cyan)),
        top[1],
    );
    let ratio = if app.max_steps == 0 {
        0.0
    } else {
        (app.step as f64 / app.max_steps as f64).min(1.0)
    };
    frame.render_widget(
        Gauge::default()
            .block(Block::default().borders(Borders::ALL).title(" LoRA steps "))
            .gauge_style(Style::default().fg(Color::Blue))
            .ratio(ratio)
            .label(format!("{}/{}", app.step, app.max_steps)),
        rows[1],
    );
    let height = rows[2].height.saturating_sub(2) as usize;
    let end = app.log.len().saturating_sub(app.scroll);
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = app
        .log
        .iter()
        .skip(start)
        .take(end - start)
        .map(|l| Line::raw(l.clone()))
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" log ")),
        rows[2],
    );
    let status = match (&app.outcome, app.cancelling) {
        (Some(Ok(s)), _) => Line::styled(
            format!("done: {s}   (q quits)"),
            Style::default().fg(Color::Green),
        ),
        (Some(Err(e)), _) => Line::styled(
            format!("failed: {e}   (q quits)"),
            Style::default().fg(Color::Red),
        ),
        (None, true) => Line::styled(
            "cancelling after the current step...",
            Style::default().fg(Color::Yellow),
        ),
        (None, false) => Line::raw("running   q: cancel   up/down: scroll log"),
    };
    frame.render_widget(
        Paragraph::new(status)
            .wrap(Wrap { trim: true })
            .block(Block::default().borders(Borders::ALL)),
        rows[3],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn screen(app: &App) -> String {
        let mut t = Terminal::new(TestBackend::new(90, 24)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn whole_screen_follows_the_run() {
        let mut app = App::new("quickstart", 40);
        app.update(Action::Run(RunEvent::StageStarted {
            stage: Stage::Model,
            index: 1,
            total: 8,
        }));
        app.update(Action::Run(RunEvent::StageFinished {
            stage: Stage::Model,
            seconds: 0.2,
        }));
        app.update(Action::Run(RunEvent::StageStarted {
            stage: Stage::Train,
            index: 4,
            total: 8,
        }));
        for step in 1..=10 {
            app.update(Action::Run(RunEvent::Train(TrainEvent::Step {
                step,
                loss: 2.0 / step as f64,
                lr: 1e-3,
                grad_norm: 1.0,
                tokens: 40,
                seconds: 2.0,
            })));
        }
        app.update(Action::Run(RunEvent::Train(TrainEvent::Validation {
            step: 10,
            loss: 0.9876,
        })));
        let s = screen(&app);
        assert!(s.contains("ok base model"), "{s}");
        assert!(s.contains("-> LoRA training"), "{s}");
        assert!(s.contains("10/40"), "{s}");
        assert!(s.contains("validation 0.9876 @ 10"), "{s}");
        assert!(s.contains("step 10: validation loss 0.9876"), "{s}");
        assert!(s.contains("q: cancel"), "{s}");
        app.update(Action::Finished(Err(
            "datasets/x.jsonl: row 3: malformed JSON".into(),
        )));
        let s = screen(&app);
        assert!(
            s.contains("!! LoRA training") && s.contains("failed: datasets/x.jsonl: row 3"),
            "{s}"
        );
    }

    #[test]
    fn log_scroll_is_bounded() {
        let mut app = App::new("t", 1);
        for i in 0..5 {
            app.update(Action::Run(RunEvent::Info {
                stage: Stage::Data,
                line: format!("line {i}"),
            }));
        }
        app.update(Action::Scroll(100));
        assert_eq!(app.scroll, 4);
        app.update(Action::Scroll(-100));
        assert_eq!(app.scroll, 0);
    }
}
