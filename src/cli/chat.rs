//! `workbench chat`: an interactive conversation with a model or artifact on the terminal,
//! rendered through the model's own chat template. `/reset` clears the history, `/quit` ends.

use std::io::{BufRead, Write};

use crate::data::template::Message;
use crate::generate::SamplingParams;

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// A model source or an artifact folder.
    pub model: String,
    /// Allow downloading a Hugging Face repo missing from the local cache (off by default).
    #[arg(long)]
    pub allow_download: bool,
    /// Optional system message.
    #[arg(long)]
    pub system: Option<String>,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(a: &ChatArgs) -> anyhow::Result<i32> {
    let loaded = super::open_model(&a.model, a.allow_download)?;
    let mut history: Vec<Message> = a.system.iter().map(|s| Message::new("system", s)).collect();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    eprintln!("chatting with {} (/reset clears, /quit ends)", a.model);
    let mut turn = 0u64;
    loop {
        print!("> ");
        out.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim();
        match line {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                history.retain(|m| m.role == "system");
                continue;
            }
            cmd if cmd.starts_with('/') => {
                eprintln!("unknown command {cmd:?} (commands: /reset, /quit)");
                continue;
            }
            _ => {}
        }
        history.push(Message::new("user", line));
        let ids = loaded.format.prompt_ids(&history)?;
        let params = SamplingParams {
            temperature: a.temperature,
            top_p: Some(a.top_p),
            seed: a.seed.wrapping_add(turn),
            max_tokens: a.max_tokens,
            stop_tokens: loaded.format.stop_ids.clone(),
            ..Default::default()
        };
        params.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let g = super::stream_to_stdout(&loaded, &ids, &params);
        history.push(Message::new("assistant", &g.text));
        turn += 1;
    }
    Ok(0)
}
