//! Logit parity with Hugging Face transformers (fixtures from
//! `eval/reference/logit_fixtures.py`): the real SmolLM2 through the GGUF path and through
//! the HF-folder path, and tiny random checkpoints of each architecture variant, for
//! prompts of 1, 7 and 300 tokens, with and without the KV cache.

use std::path::Path;

use workbench::backend::{inference_device, to_vec};
use workbench::model::{KvCache, Llama, LlamaConfig, ModelBundle, SafetensorsSource, load_llama};

use crate::common::{b64_f32, fixtures, json, max_abs_diff, real_model_path};

/// The bound on |logit difference| against the reference (f32).
const TOLERANCE: f32 = 1e-3;

fn logits_all(model: &Llama, ids: &[u32]) -> Vec<f32> {
    to_vec(model.forward(model.tokens(ids, 1), None))
}

/// Last-position logits computed token by token through the KV cache (prefill of all but the
/// last token in one call, then one decode step).
fn logits_last_cached(model: &Llama, ids: &[u32]) -> Vec<f32> {
    let mut cache = KvCache::new();
    if ids.len() > 1 {
        let _ = model.forward_last(model.tokens(&ids[..ids.len() - 1], 1), Some(&mut cache));
    }
    to_vec(model.forward_last(model.tokens(&ids[ids.len() - 1..], 1), Some(&mut cache)))
}

fn check_against(model: &Llama, reference: &serde_json::Value, label: &str) {
    let vocab = model.config.vocab_size;
    for (name, rec) in reference["prompts"].as_object().expect("prompts") {
        let ids: Vec<u32> = rec["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let want_last = b64_f32(rec["last"].as_str().unwrap());
        let stride = rec["sample_stride"].as_u64().unwrap() as usize;
        let want_sampled = b64_f32(rec["sampled"].as_str().unwrap());
        let all = logits_all(model, &ids);
        assert_eq!(all.len(), ids.len() * vocab);
        let got_last = &all[(ids.len() - 1) * vocab..];
        let d_last = max_abs_diff(got_last, &want_last);
        let got_sampled: Vec<f32> = (0..ids.len())
            .flat_map(|p| (0..vocab).step_by(stride).map(move |v| (p, v)))
            .map(|(p, v)| all[p * vocab + v])
            .collect();
        let d_all = max_abs_diff(&got_sampled, &want_sampled);
        let cached = logits_last_cached(model, &ids);
        let d_cache = max_abs_diff(&cached, &want_last);
        eprintln!(
            "{label}/{name} ({} tokens): max|d| last {d_last:.2e}, all positions {d_all:.2e}, KV cache {d_cache:.2e}",
            ids.len()
        );
        assert!(
            d_last <= TOLERANCE,
            "{label}/{name}: last-position logits differ by {d_last}"
        );
        assert!(
            d_all <= TOLERANCE,
            "{label}/{name}: logits differ by {d_all} at some position"
        );
        assert!(
            d_cache <= TOLERANCE,
            "{label}/{name}: KV-cache logits differ by {d_cache}"
        );
    }
}

#[test]
fn smollm2_gguf_matches_transformers() {
    let bundle = ModelBundle::open(&real_model_path()).expect("open GGUF");
    let (model, _) = bundle.build(&inference_device()).expect("build");
    check_against(
        &model,
        &json(&fixtures().join("logits/smollm2_reference.json")),
        "gguf",
    );
}

/// Writes the GGUF-loaded model as a Hugging Face folder (f32 safetensors, config.json,
/// tokenizer.json) and loads it back through the HF path.
#[test]
fn smollm2_hf_folder_matches_transformers_and_gguf() {
    let bundle = ModelBundle::open(&real_model_path()).expect("open GGUF");
    let (model, _) = bundle.build(&inference_device()).expect("build");
    let dir = tempfile::tempdir().unwrap();
    let tensors = workbench::export::model_tensors(&model);
    workbench::export::write_safetensors(&dir.path().join("model.safetensors"), &tensors, None)
        .unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&bundle.config.to_hf_json()).unwrap(),
    )
    .unwrap();
    bundle
        .tokenizer
        .tokenizer
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();
    let hf = ModelBundle::open(dir.path()).expect("open HF folder");
    assert_eq!(hf.format, "hf");
    assert_eq!(hf.config, bundle.config, "config round trip");
    let (hf_model, _) = hf.build(&inference_device()).expect("build HF");
    check_against(
        &hf_model,
        &json(&fixtures().join("logits/smollm2_reference.json")),
        "hf",
    );
    let ids: Vec<u32> = (100..140).collect();
    let d = max_abs_diff(&logits_all(&model, &ids), &logits_all(&hf_model, &ids));
    assert!(d <= 1e-5, "GGUF and HF paths differ by {d}");
}

fn tiny(name: &str) -> (Llama, serde_json::Value) {
    let dir = fixtures().join("logits").join(name);
    let cfg = LlamaConfig::from_hf_file(&dir.join("config.json")).expect("config");
    let src = SafetensorsSource::open_dir(&dir).expect("safetensors");
    let (model, _) = load_llama(&cfg, &src, &inference_device()).expect("load");
    (model, json(&dir.join("reference.json")))
}

#[test]
fn tiny_llama_tied_matches_transformers() {
    let (m, r) = tiny("tiny_llama_tied");
    assert!(m.config.tie_word_embeddings);
    check_against(&m, &r, "llama_tied");
}

#[test]
fn tiny_llama3_rope_scaling_matches_transformers() {
    let (m, r) = tiny("tiny_llama3_rope_scaling");
    assert!(m.config.rope_scaling.is_some());
    check_against(&m, &r, "llama3_rope_scaling");
}

#[test]
fn tiny_mistral_sliding_window_f16_matches_transformers() {
    let (m, r) = tiny("tiny_mistral_sliding");
    assert_eq!(m.config.sliding_window, Some(16));
    check_against(&m, &r, "mistral_sliding");
}

#[test]
fn tiny_qwen2_bias_bf16_matches_transformers() {
    let (m, r) = tiny("tiny_qwen2_bias");
    assert!(m.config.attention_bias);
    check_against(&m, &r, "qwen2_bias");
}

#[test]
fn unsupported_config_value_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("logits/tiny_llama_tied/config.json");
    let mut v = json(&src);
    v["hidden_act"] = "gelu".into();
    let p = dir.path().join("config.json");
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = LlamaConfig::from_hf_file(&p).unwrap_err().to_string();
    assert!(e.contains("hidden_act") && e.contains("gelu"), "{e}");
    v["hidden_act"] = "silu".into();
    v["model_type"] = "gpt_neox".into();
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = LlamaConfig::from_hf_file(&p).unwrap_err().to_string();
    assert!(e.contains("model_type") && e.contains("gpt_neox"), "{e}");
    let _ = Path::new("");
}
