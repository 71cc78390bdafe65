//! Latency benchmarks: time to first token and decode speed over a fixed prompt set, with
//! median and p95, plus resident memory. Models are compared within one run, as ratios.

use std::time::Duration;

use serde::Serialize;

use crate::data::template::Message;
use crate::data::tokenize::ChatFormat;
use crate::generate::{self, SamplingParams};
use crate::model::Llama;

/// Timings of one model.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub label: String,
    pub runs: usize,
    pub prompt_tokens_mean: f64,
    pub ttft_ms_p50: f64,
    pub ttft_ms_p95: f64,
    pub decode_ms_per_token_p50: f64,
    pub decode_ms_per_token_p95: f64,
    pub decode_tokens_per_s: f64,
    pub prefill_tokens_per_s: f64,
    pub rss_mib: f64,
    pub weight_mib: f64,
}

/// Percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Resident set size of this process in MiB (Linux), NaN elsewhere.
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs each prompt once to warm up, then `repeats` times, decoding exactly
/// `decode_tokens` tokens (stop tokens ignored so every run does the same work).
pub fn bench_model(
    label: &str,
    model: &Llama,
    format: &ChatFormat,
    prompts: &[String],
    decode_tokens: usize,
    repeats: usize,
    weight_bytes: usize,
) -> BenchResult {
    let params = SamplingParams {
        max_tokens: decode_tokens,
        ..Default::default()
    };
    let mut ttft = Vec::new();
    let mut per_token = Vec::new();
    let mut prompt_tokens = Vec::new();
    let mut prefill_rates = Vec::new();
    for (pi, p) in prompts.iter().enumerate() {
        let ids = format
            .prompt_ids(&[Message::new("user", p)])
            .unwrap_or_default();
        for rep in 0..=repeats {
            let g = generate::generate(model, &format.tokenizer, &ids, &params, &mut |_| {});
            if rep == 0 && pi == 0 {
                continue;
            }
            if rep == 0 {
                continue;
            }
            ttft.push(ms(g.time_to_first_token));
            prefill_rates.push(ids.len() as f64 / g.time_to_first_token.as_secs_f64().max(1e-9));
            prompt_tokens.push(ids.len() as f64);
            per_token.extend(g.decode_times.iter().map(|d| ms(*d)));
        }
    }
    let sort = |v: &mut Vec<f64>| v.sort_by(|a, b| a.total_cmp(b));
    sort(&mut ttft);
    sort(&mut per_token);
    sort(&mut prefill_rates);
    let p50 = percentile(&per_token, 50.0);
    BenchResult {
        label: label.to_string(),
        runs: ttft.len(),
        prompt_tokens_mean: prompt_tokens.iter().sum::<f64>() / prompt_tokens.len().max(1) as f64,
        ttft_ms_p50: percentile(&ttft, 50.0),
        ttft_ms_p95: percentile(&ttft, 95.0),
        decode_ms_per_token_p50: p50,
        decode_ms_per_token_p95: percentile(&per_token, 95.0),
        decode_tokens_per_s: 1e3 / p50,
        prefill_tokens_per_s: percentile(&prefill_rates, 50.0),
        rss_mib: rss_mib(),
        weight_mib: weight_bytes as f64 / (1024.0 * 1024.0),
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 10.0);
        assert_eq!(percentile(&v, 95.0), 19.0);
        assert_eq!(percentile(&v, 100.0), 20.0);
    }
}
