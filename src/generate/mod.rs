//! Text generation: sampling (greedy, temperature, top-k, top-p, min-p, repetition penalty,
//! seed), stop tokens and stop strings, and streaming detokenisation that never splits a
//! UTF-8 character. Works with any [`Llama`], f32 or INT8.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::model::{KvCache, Llama};

/// How to pick each next token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    /// 1.0 disables it.
    pub repetition_penalty: f32,
    pub seed: u64,
    pub max_tokens: usize,
    pub stop_tokens: Vec<u32>,
    pub stop_strings: Vec<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            min_p: None,
            repetition_penalty: 1.0,
            seed: 0,
            max_tokens: 128,
            stop_tokens: vec![],
            stop_strings: vec![],
        }
    }
}

impl SamplingParams {
    /// Checks every value is in range; the message names the parameter.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && (0.0..=MAX_TEMPERATURE).contains(&self.temperature)) {
            return Err(format!(
                "temperature must be in [0, {MAX_TEMPERATURE}] (got {})",
                self.temperature
            ));
        }
        if let Some(p) = self.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Err(format!("top_p must be in (0, 1] (got {p})"));
        }
        if let Some(p) = self.min_p.filter(|p| !(0.0..=1.0).contains(p)) {
            return Err(format!("min_p must be in [0, 1] (got {p})"));
        }
        if self.top_k == Some(0) {
            return Err("top_k must be > 0 (got 0)".into());
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(format!(
                "repetition_penalty must be > 0 (got {})",
                self.repetition_penalty
            ));
        }
        Ok(())
    }
}

/// Largest accepted sampling temperature.
pub const MAX_TEMPERATURE: f32 = 2.0;

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// A stop token or stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

/// The result of one generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated token ids, excluding the stop token.
    pub tokens: Vec<u32>,
    /// Generated text, cut before any stop string.
    pub text: String,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    /// Time from start to the first generated token (prefill + one sampling).
    pub time_to_first_token: Duration,
    /// Time of each further decode step.
    pub decode_times: Vec<Duration>,
}

/// Turns logits into a token.
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    pub fn new(params: &SamplingParams) -> Self {
        Self {
            params: params.clone(),
            rng: StdRng::seed_from_u64(params.seed),
        }
    }

    /// Picks the next token from `logits` given the tokens seen so far.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            for &t in history {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                }
            }
        }
        if p.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l / p.temperature))
            .collect();
        cand.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        if let Some(k) = p.top_k.filter(|&k| k > 0) {
            cand.truncate(k);
        }
        let max = cand[0].1;
        let mut probs: Vec<f32> = cand.iter().map(|(_, l)| (l - max).exp()).collect();
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= sum);
        if let Some(min_p) = p.min_p {
            let cut = probs[0] * min_p;
            let keep = probs.iter().take_while(|&&x| x >= cut).count().max(1);
            probs.truncate(keep);
        }
        if let Some(top_p) = p.top_p.filter(|&t| t < 1.0) {
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (i, x) in probs.iter().enumerate() {
                acc += x;
                if acc >= top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep.max(1));
        }
        let total: f32 = probs.iter().sum();
        let mut u: f32 = self.rng.random::<f32>() * total;
        for (i, x) in probs.iter().enumerate() {
            if u < *x {
                return cand[i].0;
            }
            u -= x;
        }
        cand[probs.len() - 1].0
    }
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Emits text as tokens arrive, holding back bytes that do not yet form whole characters.
pub struct StreamDecoder<'a> {
    tokenizer: &'a tokenizers::Tokenizer,
    tokens: Vec<u32>,
    emitted: usize,
}

impl<'a> StreamDecoder<'a> {
    pub fn new(tokenizer: &'a tokenizers::Tokenizer) -> Self {
        Self {
            tokenizer,
            tokens: Vec::new(),
            emitted: 0,
        }
    }

    /// Adds a token; returns the newly completed text, if any.
    pub fn push(&mut self, token: u32) -> String {
        self.tokens.push(token);
        let text = self
            .tokenizer
            .decode(&self.tokens, true)
            .unwrap_or_default();
        if text.ends_with('\u{FFFD}') || text.len() < self.emitted {
            return String::new();
        }
        let new = text[self.emitted..].to_string();
        self.emitted = text.len();
        new
    }

    /// All text decoded so far.
    pub fn text(&self) -> String {
        self.tokenizer
            .decode(&self.tokens, true)
            .unwrap_or_default()
    }
}

/// Byte offset of the earliest stop string in `text`, if any.
fn first_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

/// Length of the longest suffix of `text` that is a proper prefix of some stop string (on a
/// character boundary): the part that must not be streamed yet.
fn stop_prefix_len(text: &str, stops: &[String]) -> usize {
    let mut best = 0;
    for s in stops {
        for (i, _) in s.char_indices().skip(1) {
            if i > best && text.ends_with(&s[..i]) {
                best = i;
            }
        }
    }
    best
}

/// Generates from `prompt` (token ids) until a stop token, a stop string or `max_tokens`.
/// `on_text` receives streamed text pieces.
pub fn generate(
    model: &Llama,
    tokenizer: &tokenizers::Tokenizer,
    prompt: &[u32],
    params: &SamplingParams,
    on_text: &mut dyn FnMut(&str),
) -> Generation {
    let start = Instant::now();
    let mut sampler = Sampler::new(params);
    let mut cache = KvCache::new();
    let mut history = prompt.to_vec();
    let mut stream = StreamDecoder::new(tokenizer);
    let mut out = Vec::new();
    let mut decode_times = Vec::new();
    let mut ttft = Duration::ZERO;
    let mut finish = FinishReason::Length;
    let mut input = prompt.to_vec();
    // Text decoded so far, and how much of it has been handed to `on_text`. Text that could
    // be the start of a stop string is held back until it is clearly not one.
    let mut text = String::new();
    let mut sent = 0usize;
    let max_ctx = model.config.max_position_embeddings;
    while out.len() < params.max_tokens && history.len() < max_ctx {
        let step = Instant::now();
        let logits = model.forward_last(model.tokens(&input, 1), Some(&mut cache));
        let mut logits = crate::backend::to_vec(logits);
        let next = sampler.sample(&mut logits, &history);
        if out.is_empty() {
            ttft = start.elapsed();
        } else {
            decode_times.push(step.elapsed());
        }
        if params.stop_tokens.contains(&next) {
            finish = FinishReason::Stop;
            break;
        }
        out.push(next);
        history.push(next);
        text.push_str(&stream.push(next));
        if let Some(cut) = first_stop(&text, &params.stop_strings) {
            text.truncate(cut);
            finish = FinishReason::Stop;
            break;
        }
        let safe = text.len() - stop_prefix_len(&text, &params.stop_strings);
        if safe > sent {
            on_text(&text[sent..safe]);
            sent = safe;
        }
        input = vec![next];
    }
    if finish == FinishReason::Length && params.stop_strings.is_empty() {
        text = stream.text();
    }
    if text.len() > sent {
        on_text(&text[sent..]);
    }
    Generation {
        tokens: out,
        text,
        finish,
        prompt_tokens: prompt.len(),
        time_to_first_token: ttft,
        decode_times,
    }
}

/// Generates for several prompts of different lengths in one batch: prompts are left-padded
/// with `pad`, padded positions are masked, and each row samples and stops on its own (with
/// its own seed, `params.seed + row`). Returns one [`Generation`] per prompt, in order.
pub fn generate_batch(
    model: &Llama,
    tokenizer: &tokenizers::Tokenizer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    pad: u32,
) -> Vec<Generation> {
    let start = Instant::now();
    let batch = prompts.len();
    if batch == 0 {
        return vec![];
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let pads: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
    let mut input: Vec<u32> = Vec::with_capacity(batch * longest);
    for (p, &n) in prompts.iter().zip(&pads) {
        input.extend(std::iter::repeat_n(pad, n));
        input.extend(p);
    }
    let mut cache = KvCache::with_left_padding(pads);
    let mut samplers: Vec<Sampler> = (0..batch)
        .map(|r| {
            Sampler::new(&SamplingParams {
                seed: params.seed.wrapping_add(r as u64),
                ..params.clone()
            })
        })
        .collect();
    let mut history: Vec<Vec<u32>> = prompts.to_vec();
    let mut outs: Vec<Vec<u32>> = vec![Vec::new(); batch];
    let mut finish = vec![None; batch];
    let mut ttft = Duration::ZERO;
    let mut decode_times = Vec::new();
    let mut cols = longest;
    while finish.iter().any(Option::is_none) && cols < model.config.max_position_embeddings {
        let step = Instant::now();
        let logits = crate::backend::to_vec(
            model.forward_last(model.tokens(&input, batch), Some(&mut cache)),
        );
        let vocab = logits.len() / batch;
        let mut next = vec![pad; batch];
        for r in 0..batch {
            if finish[r].is_some() {
                continue;
            }
            let mut row = logits[r * vocab..(r + 1) * vocab].to_vec();
            let t = samplers[r].sample(&mut row, &history[r]);
            if params.stop_tokens.contains(&t) {
                finish[r] = Some(FinishReason::Stop);
                continue;
            }
            outs[r].push(t);
            history[r].push(t);
            next[r] = t;
            if outs[r].len() >= params.max_tokens {
                finish[r] = Some(FinishReason::Length);
            }
        }
        if ttft.is_zero() {
            ttft = start.elapsed();
        } else {
            decode_times.push(step.elapsed());
        }
        input = next;
        cols += 1;
    }
    outs.into_iter()
        .zip(finish)
        .zip(prompts)
        .map(|((tokens, fin), prompt)| {
            let mut text = tokenizer.decode(&tokens, true).unwrap_or_default();
            let mut finish = fin.unwrap_or(FinishReason::Length);
            if let Some(cut) = first_stop(&text, &params.stop_strings) {
                text.truncate(cut);
                finish = FinishReason::Stop;
            }
            Generation {
                tokens,
                text,
                finish,
                prompt_tokens: prompt.len(),
                time_to_first_token: ttft,
                decode_times: decode_times.clone(),
            }
        })
        .collect()
}
