//! Turning chat records into training examples: the model's own template, prompt tokens
//! masked, answer tokens labelled up to and including the end-of-turn token (so the model
//! learns to stop), a deterministic train/validation split and padded batches.

use super::ingest::Record;
use super::template::{ChatTemplate, Message, TemplateError};

/// Marker used to find what a template writes after an assistant answer.
const PROBE_ANSWER: &str = "WORKBENCH_PROBE_ANSWER";

/// A tokenized example: `ids` and, per position, whether it is a trained (answer) token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub ids: Vec<u32>,
    /// `true` where the token is part of the answer (its prediction is trained).
    pub trained: Vec<bool>,
}

/// The model's chat format: template, end-of-turn token and stop ids.
pub struct ChatFormat {
    pub template: ChatTemplate,
    pub tokenizer: tokenizers::Tokenizer,
    /// The token that ends an assistant turn (`<|im_end|>` for SmolLM2), if the template has one.
    pub end_of_turn: Option<u32>,
    /// BOS prepended to every sequence, when the model wants one.
    pub bos: Option<u32>,
    /// Ids that end generation: end-of-turn plus the tokenizer's EOS.
    pub stop_ids: Vec<u32>,
}

/// Tokenization problems, naming the record.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("{source_path}: row {row}: {why}")]
    Record {
        source_path: String,
        row: usize,
        why: String,
    },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

impl ChatFormat {
    /// Builds the format and finds the end-of-turn token by rendering a probe conversation.
    pub fn new(
        template: ChatTemplate,
        tokenizer: tokenizers::Tokenizer,
        bos: Option<u32>,
        eos: Option<u32>,
    ) -> Result<Self, TokenizeError> {
        let probe = [
            Message::new("user", "x"),
            Message::new("assistant", PROBE_ANSWER),
        ];
        let full = template.render(&probe, false)?;
        let end_of_turn = full.split_once(PROBE_ANSWER).and_then(|(_, after)| {
            let enc = tokenizer.encode(after, false).ok()?;
            let first = *enc.get_ids().first()?;
            let is_special = tokenizer
                .get_added_tokens_decoder()
                .get(&first)
                .is_some_and(|t| t.special);
            is_special.then_some(first)
        });
        let mut stop_ids: Vec<u32> = end_of_turn.into_iter().collect();
        if let Some(e) = eos.filter(|e| !stop_ids.contains(e)) {
            stop_ids.push(e);
        }
        Ok(Self {
            template,
            tokenizer,
            end_of_turn,
            bos,
            stop_ids,
        })
    }

    /// Token ids of `text` without special-token insertion.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| TokenizeError::Tokenizer(e.to_string()))
    }

    /// Prompt ids for a conversation that the assistant answers next.
    pub fn prompt_ids(&self, messages: &[Message]) -> Result<Vec<u32>, TokenizeError> {
        let text = self.template.render(messages, true)?;
        let mut ids: Vec<u32> = self.bos.into_iter().collect();
        ids.extend(self.encode(&text)?);
        Ok(ids)
    }

    /// Tokenizes a record: prompt masked, answer trained through the end-of-turn token,
    /// truncated to `max_len` tokens.
    pub fn example(&self, record: &Record, max_len: usize) -> Result<Example, TokenizeError> {
        let err = |why: String| TokenizeError::Record {
            source_path: record.source.clone(),
            row: record.row,
            why,
        };
        let (prompt, answer) = self
            .template
            .split_prompt_answer(&record.messages)
            .map_err(|e| err(e.to_string()))?;
        let mut ids: Vec<u32> = self.bos.into_iter().collect();
        ids.extend(self.encode(&prompt)?);
        let prompt_len = ids.len();
        let mut answer_ids = self.encode(&answer)?;
        if let Some(eot) = self.end_of_turn {
            if let Some(pos) = answer_ids.iter().position(|&t| t == eot) {
                answer_ids.truncate(pos + 1);
            }
        }
        ids.extend(answer_ids);
        let mut trained: Vec<bool> = (0..ids.len()).map(|i| i >= prompt_len).collect();
        if ids.len() > max_len {
            ids.truncate(max_len);
            trained.truncate(max_len);
        }
        if !trained.iter().skip(1).any(|&t| t) {
            return Err(err(format!(
                "no answer token fits in max_seq_len {max_len} (prompt is {prompt_len} tokens)"
            )));
        }
        Ok(Example { ids, trained })
    }
}

/// Deterministic split: every `k`-th example (by a seeded shuffle) goes to validation.
pub fn split<T: Clone>(items: &[T], validation_fraction: f64, seed: u64) -> (Vec<T>, Vec<T>) {
    let n = items.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    for i in (1..n).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let j = (s % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let n_val = ((n as f64 * validation_fraction).round() as usize)
        .clamp(usize::from(n > 1), n.saturating_sub(1));
    let val = order[..n_val].iter().map(|&i| items[i].clone()).collect();
    let train = order[n_val..].iter().map(|&i| items[i].clone()).collect();
    (train, val)
}

/// A padded batch: ids `[batch, len]`, targets for next-token prediction and their mask.
#[derive(Debug, Clone)]
pub struct Batch {
    pub batch: usize,
    pub len: usize,
    pub ids: Vec<u32>,
    /// `targets[b*len + i]` is the token position `i` must predict (ids shifted by one).
    pub targets: Vec<u32>,
    /// 1.0 where position `i`'s prediction counts in the loss.
    pub mask: Vec<f32>,
}

/// Pads examples to the longest one with `pad`.
pub fn make_batch(examples: &[&Example], pad: u32) -> Batch {
    let len = examples
        .iter()
        .map(|e| e.ids.len())
        .max()
        .unwrap_or(1)
        .max(2)
        - 1;
    let batch = examples.len();
    let mut ids = vec![pad; batch * len];
    let mut targets = vec![pad; batch * len];
    let mut mask = vec![0.0f32; batch * len];
    for (b, e) in examples.iter().enumerate() {
        for i in 0..e.ids.len().saturating_sub(1).min(len) {
            ids[b * len + i] = e.ids[i];
            targets[b * len + i] = e.ids[i + 1];
            if e.trained[i + 1] {
                mask[b * len + i] = 1.0;
            }
        }
    }
    Batch {
        batch,
        len,
        ids,
        targets,
        mask,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_shifts_and_masks() {
        let e = Example {
            ids: vec![1, 2, 3, 4],
            trained: vec![false, false, true, true],
        };
        let b = make_batch(&[&e], 0);
        assert_eq!(b.ids, vec![1, 2, 3]);
        assert_eq!(b.targets, vec![2, 3, 4]);
        assert_eq!(b.mask, vec![0.0, 1.0, 1.0]);
    }

    #[test]
    fn split_is_deterministic_and_disjoint() {
        let items: Vec<usize> = (0..50).collect();
        let (a, b) = split(&items, 0.2, 7);
        let (c, d) = split(&items, 0.2, 7);
        assert_eq!((a.clone(), b.clone()), (c, d));
        assert_eq!(b.len(), 10);
        assert!(a.iter().all(|x| !b.contains(x)));
    }
}
