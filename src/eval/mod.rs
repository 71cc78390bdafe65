//! Quality evaluation: perplexity over held-out text and over examples, greedy generations
//! for a fixed prompt set, and the drift of one model against another (INT8 against f32).

use serde::Serialize;

use crate::data::template::Message;
use crate::data::tokenize::{ChatFormat, Example};
use crate::generate::{self, SamplingParams};
use crate::model::Llama;
use crate::train::evaluate_loss;

/// Perplexity of `model` over `tokens`, scored in windows of `window` tokens.
pub fn text_perplexity(model: &Llama, tokens: &[u32], window: usize, pad: u32) -> f64 {
    let examples: Vec<Example> = tokens
        .chunks(window.max(2))
        .filter(|c| c.len() >= 2)
        .map(|c| Example {
            ids: c.to_vec(),
            trained: vec![true; c.len()],
        })
        .collect();
    evaluate_loss(model, &examples, 4, pad).exp()
}

/// One prompt's greedy answer.
#[derive(Debug, Clone, Serialize)]
pub struct PromptResult {
    pub prompt: String,
    pub answer: String,
    pub tokens: usize,
    /// Whether generation ended on a stop token (not on max_tokens).
    pub stopped: bool,
}

/// Greedy answers for each prompt (as a single user turn) through the chat template.
pub fn answer_prompts(
    model: &Llama,
    format: &ChatFormat,
    prompts: &[String],
    max_tokens: usize,
) -> Vec<PromptResult> {
    prompts
        .iter()
        .map(|p| {
            let ids = format
                .prompt_ids(&[Message::new("user", p)])
                .unwrap_or_default();
            let params = SamplingParams {
                max_tokens,
                stop_tokens: format.stop_ids.clone(),
                ..Default::default()
            };
            let g = generate::generate(model, &format.tokenizer, &ids, &params, &mut |_| {});
            PromptResult {
                prompt: p.clone(),
                answer: g.text.trim().to_string(),
                tokens: g.tokens.len(),
                stopped: g.finish == generate::FinishReason::Stop,
            }
        })
        .collect()
}

/// Largest absolute difference between two models' logits on `ids`.
pub fn max_logit_diff(a: &Llama, b: &Llama, ids: &[u32]) -> f32 {
    let la = crate::backend::to_vec(a.forward(a.tokens(ids, 1), None));
    let lb = crate::backend::to_vec(b.forward(b.tokens(ids, 1), None));
    la.iter()
        .zip(&lb)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Fraction of positions where two models agree on the argmax next token.
pub fn top1_agreement(a: &Llama, b: &Llama, ids: &[u32]) -> f64 {
    let v = a.config.vocab_size;
    let la = crate::backend::to_vec(a.forward(a.tokens(ids, 1), None));
    let lb = crate::backend::to_vec(b.forward(b.tokens(ids, 1), None));
    let n = ids.len();
    let agree = (0..n)
        .filter(|&i| {
            generate::argmax(&la[i * v..(i + 1) * v]) == generate::argmax(&lb[i * v..(i + 1) * v])
        })
        .count();
    agree as f64 / n.max(1) as f64
}
