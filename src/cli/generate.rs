//! `workbench generate`: one completion from a model or artifact, streamed to stdout.

use crate::data::template::Message;
use crate::generate::SamplingParams;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// A model source (path, pip:NAME==VERSION, ORG/NAME in the HF cache) or an artifact folder.
    pub model: String,
    /// Allow downloading a Hugging Face repo missing from the local cache (off by default).
    #[arg(long)]
    pub allow_download: bool,
    /// The user message (rendered through the model's chat template unless --raw).
    #[arg(long, short)]
    pub prompt: String,
    /// Optional system message.
    #[arg(long)]
    pub system: Option<String>,
    /// Feed the prompt as raw text, without the chat template.
    #[arg(long)]
    pub raw: bool,
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample only among the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling: the smallest set of tokens whose probability reaches p, in (0, 1].
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Drop tokens below min_p times the top token's probability, in [0, 1].
    #[arg(long)]
    pub min_p: Option<f32>,
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop strings (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
}

fn sampling(a: &GenerateArgs) -> SamplingParams {
    SamplingParams {
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repetition_penalty: a.repetition_penalty,
        seed: a.seed,
        max_tokens: a.max_tokens,
        stop_tokens: vec![],
        stop_strings: a.stop.clone(),
    }
}

pub fn run(a: &GenerateArgs) -> anyhow::Result<i32> {
    sampling(a).validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let loaded = super::open_model(&a.model, a.allow_download)?;
    let ids = if a.raw {
        let mut ids: Vec<u32> = loaded.format.bos.into_iter().collect();
        ids.extend(loaded.format.encode(&a.prompt)?);
        ids
    } else {
        let mut msgs = Vec::new();
        if let Some(s) = &a.system {
            msgs.push(Message::new("system", s));
        }
        msgs.push(Message::new("user", &a.prompt));
        loaded.format.prompt_ids(&msgs)?
    };
    let params = SamplingParams {
        stop_tokens: loaded.format.stop_ids.clone(),
        ..sampling(a)
    };
    let g = super::stream_to_stdout(&loaded, &ids, &params);
    let decode: f64 = g.decode_times.iter().map(|d| d.as_secs_f64()).sum();
    eprintln!(
        "[{} prompt tokens, {} generated, finish: {:?}, TTFT {:.0} ms, {:.1} tok/s]",
        g.prompt_tokens,
        g.tokens.len(),
        g.finish,
        g.time_to_first_token.as_secs_f64() * 1e3,
        g.decode_times.len() as f64 / decode.max(1e-9)
    );
    Ok(0)
}
