//! Chat templates against transformers' `apply_chat_template`, generation determinism,
//! greedy decoding against step-by-step argmax, stop strings, and loader edge cases
//! (tied heads, sharded checkpoints).

use workbench::backend::{inference_device, to_vec};
use workbench::data::template::Message;
use workbench::generate::{self, FinishReason, SamplingParams, argmax};
use workbench::model::{LlamaConfig, ModelBundle, SafetensorsSource, load_llama};

use crate::common::{fixtures, json, max_abs_diff, real_model_path};

fn loaded() -> workbench::pipeline::LoadedModel {
    workbench::pipeline::open_model(real_model_path().to_str().unwrap(), &mut ())
        .expect("open model")
}

#[test]
fn chat_template_matches_transformers() {
    let bundle = ModelBundle::open(&real_model_path()).unwrap();
    let format = workbench::pipeline::chat_format(&bundle).unwrap();
    let cases = json(&fixtures().join("chat/smollm2_templates.json"));
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for c in cases {
        let msgs: Vec<Message> = serde_json::from_value(c["messages"].clone()).unwrap();
        let add_gen = c["add_generation_prompt"].as_bool().unwrap();
        let got = format.template.render(&msgs, add_gen).unwrap();
        assert_eq!(
            got,
            c["text"].as_str().unwrap(),
            "messages {msgs:?}, add_generation_prompt {add_gen}"
        );
    }
    let eot = bundle
        .tokenizer
        .tokenizer
        .token_to_id("<|im_end|>")
        .unwrap();
    assert_eq!(format.end_of_turn, Some(eot));
    assert!(format.stop_ids.contains(&eot));
}

#[test]
fn greedy_generation_equals_stepwise_argmax_and_sampling_is_seeded() {
    let m = loaded();
    let prompt = m
        .format
        .prompt_ids(&[Message::new("user", "Name three colours.")])
        .unwrap();
    let params = SamplingParams {
        max_tokens: 12,
        ..Default::default()
    };
    let g = generate::generate(&m.model, &m.format.tokenizer, &prompt, &params, &mut |_| {});
    assert_eq!(g.tokens.len(), 12);
    assert_eq!(g.finish, FinishReason::Length);
    // Recompute each step with a full forward pass (no cache) and take the argmax.
    let mut ids = prompt.clone();
    for (step, &tok) in g.tokens.iter().enumerate() {
        let logits = to_vec(m.model.forward_last(m.model.tokens(&ids, 1), None));
        assert_eq!(argmax(&logits), tok, "step {step}");
        ids.push(tok);
    }
    let sample = |seed| {
        let p = SamplingParams {
            temperature: 0.9,
            top_k: Some(40),
            top_p: Some(0.95),
            min_p: Some(0.02),
            repetition_penalty: 1.1,
            seed,
            max_tokens: 16,
            ..Default::default()
        };
        generate::generate(&m.model, &m.format.tokenizer, &prompt, &p, &mut |_| {}).tokens
    };
    assert_eq!(sample(7), sample(7), "same seed, same tokens");
    assert_ne!(
        sample(7),
        sample(8),
        "different seeds should differ on 16 sampled tokens"
    );
}

#[test]
fn streaming_text_equals_final_text_and_stop_strings_cut() {
    let m = loaded();
    let prompt = m
        .format
        .prompt_ids(&[Message::new("user", "Écris une phrase sur la mer 🌊.")])
        .unwrap();
    let mut streamed = String::new();
    let params = SamplingParams {
        max_tokens: 24,
        stop_tokens: m.format.stop_ids.clone(),
        ..Default::default()
    };
    let g = generate::generate(&m.model, &m.format.tokenizer, &prompt, &params, &mut |t| {
        streamed.push_str(t)
    });
    assert_eq!(streamed, g.text);
    let cut_at = g.text.char_indices().nth(5).map(|(i, _)| i).unwrap();
    let stop = g.text[cut_at..].chars().take(3).collect::<String>();
    let p2 = SamplingParams {
        stop_strings: vec![stop.clone()],
        ..params
    };
    let mut streamed2 = String::new();
    let g2 = generate::generate(&m.model, &m.format.tokenizer, &prompt, &p2, &mut |t| {
        streamed2.push_str(t)
    });
    assert_eq!(g2.finish, FinishReason::Stop);
    assert!(
        !g2.text.contains(&stop),
        "{:?} still holds stop {stop:?}",
        g2.text
    );
    assert_eq!(streamed2, g2.text);
    assert!(g.text.starts_with(&g2.text));
}

fn tiny_dir() -> std::path::PathBuf {
    fixtures().join("logits/tiny_llama_tied")
}

#[test]
fn tied_head_variants_load_faithfully() {
    let dev = inference_device();
    let cfg = LlamaConfig::from_hf_file(&tiny_dir().join("config.json")).unwrap();
    let base = SafetensorsSource::open_dir(&tiny_dir()).unwrap();
    let (m0, r0) = load_llama(&cfg, &base, &dev).unwrap();
    assert!(r0.warnings.is_empty());
    let ids: Vec<u32> = (0..20).collect();
    let l0 = to_vec(m0.forward(m0.tokens(&ids, 1), None));
    let write_with_head = |head: Vec<f32>| {
        let dir = tempfile::tempdir().unwrap();
        let mut tensors = workbench::export::model_tensors(&m0);
        let bytes: Vec<u8> = head.iter().flat_map(|x| x.to_le_bytes()).collect();
        tensors.push(workbench::export::RawTensor {
            name: "lm_head.weight".into(),
            dtype: safetensors::Dtype::F32,
            shape: vec![cfg.vocab_size, cfg.hidden_size],
            bytes,
        });
        workbench::export::write_safetensors(&dir.path().join("model.safetensors"), &tensors, None)
            .unwrap();
        dir
    };
    let embed = to_vec(m0.embed.clone());
    // A redundant identical head loads the same, without a warning.
    let same = write_with_head(embed.clone());
    let (m1, r1) = load_llama(
        &cfg,
        &SafetensorsSource::open_dir(same.path()).unwrap(),
        &dev,
    )
    .unwrap();
    assert!(r1.warnings.is_empty());
    assert_eq!(
        max_abs_diff(&l0, &to_vec(m1.forward(m1.tokens(&ids, 1), None))),
        0.0
    );
    // A head that differs while the config says tied: the real head is used, with a warning.
    let other: Vec<f32> = embed.iter().map(|v| -v).collect();
    let diff = write_with_head(other);
    let (m2, r2) = load_llama(
        &cfg,
        &SafetensorsSource::open_dir(diff.path()).unwrap(),
        &dev,
    )
    .unwrap();
    assert_eq!(r2.warnings.len(), 1, "{:?}", r2.warnings);
    assert!(r2.warnings[0].contains("lm_head.weight"));
    let l2 = to_vec(m2.forward(m2.tokens(&ids, 1), None));
    assert!(
        max_abs_diff(&l0, &l2) > 1.0,
        "the differing head must be used"
    );
    // Untied config without a head tensor: a clear error naming it.
    let mut untied = cfg.clone();
    untied.tie_word_embeddings = false;
    let e = load_llama(&untied, &base, &dev).err().unwrap().to_string();
    assert!(e.contains("lm_head.weight"), "{e}");
}

#[test]
fn sharded_checkpoint_loads_like_a_single_file() {
    let dev = inference_device();
    let cfg = LlamaConfig::from_hf_file(&tiny_dir().join("config.json")).unwrap();
    let (m0, _) = load_llama(
        &cfg,
        &SafetensorsSource::open_dir(&tiny_dir()).unwrap(),
        &dev,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tensors = workbench::export::model_tensors(&m0);
    let half = tensors.len() / 2;
    let (a, b) = tensors.split_at(half);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let owned: Vec<workbench::export::RawTensor> = part
            .iter()
            .map(|t| workbench::export::RawTensor {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                bytes: t.bytes.clone(),
            })
            .collect();
        workbench::export::write_safetensors(&dir.path().join(file), &owned, None).unwrap();
        for t in part {
            map.insert(t.name.clone(), file.into());
        }
    }
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        serde_json::to_vec(&serde_json::json!({"metadata": {}, "weight_map": map})).unwrap(),
    )
    .unwrap();
    let (m1, _) = load_llama(
        &cfg,
        &SafetensorsSource::open_dir(dir.path()).unwrap(),
        &dev,
    )
    .unwrap();
    let ids: Vec<u32> = (0..16).collect();
    assert_eq!(
        max_abs_diff(
            &to_vec(m0.forward(m0.tokens(&ids, 1), None)),
            &to_vec(m1.forward(m1.tokens(&ids, 1), None))
        ),
        0.0
    );
}

#[test]
fn batched_generation_of_different_lengths_equals_one_by_one() {
    let m = loaded();
    let questions = [
        "Hi",
        "What is the capital of France?",
        "List the planets of the solar system in order, please.",
    ];
    let prompts: Vec<Vec<u32>> = questions
        .iter()
        .map(|q| m.format.prompt_ids(&[Message::new("user", q)]).unwrap())
        .collect();
    assert!(prompts[0].len() != prompts[2].len());
    let params = SamplingParams {
        max_tokens: 10,
        stop_tokens: m.format.stop_ids.clone(),
        ..Default::default()
    };
    let batched = generate::generate_batch(
        &m.model,
        &m.format.tokenizer,
        &prompts,
        &params,
        m.format.stop_ids[0],
    );
    assert_eq!(batched.len(), 3);
    for (p, b) in prompts.iter().zip(&batched) {
        let single = generate::generate(&m.model, &m.format.tokenizer, p, &params, &mut |_| {});
        assert_eq!(
            b.tokens,
            single.tokens,
            "batched and single generation differ for a {}-token prompt",
            p.len()
        );
        assert_eq!(b.finish, single.finish);
    }
    // Padded rows produce the same last-position logits as unpadded ones.
    let mut cache =
        workbench::model::KvCache::with_left_padding(vec![prompts[2].len() - prompts[1].len(), 0]);
    let mut ids = vec![m.format.stop_ids[0]; prompts[2].len() - prompts[1].len()];
    ids.extend(&prompts[1]);
    ids.extend(&prompts[2]);
    let both = to_vec(
        m.model
            .forward_last(m.model.tokens(&ids, 2), Some(&mut cache)),
    );
    let alone = to_vec(m.model.forward_last(m.model.tokens(&prompts[1], 1), None));
    let v = alone.len();
    let d = max_abs_diff(&both[..v], &alone);
    assert!(d <= 1e-3, "left-padded row differs by {d}");
}
