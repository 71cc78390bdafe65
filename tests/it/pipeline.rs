//! The whole pipeline on the real model with a small recipe: governance (a canary secret in
//! a SECRET row must never reach any byte the run writes), real training (validation loss
//! falls), the merge check, INT8, the artifact and its manifest, then `serve` on loopback
//! answering through the chat-completions API with API keys, DLP and the audit trail.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use workbench::audit::AuditLog;
use workbench::data::classify::Level;
use workbench::data::dlp::Scanner;
use workbench::pipeline::{self, RunEvent, RunSink};
use workbench::recipe::Recipe;
use workbench::serve::{self, Engine};

use crate::common::{all_files, http, real_model_path, repo};

struct Collect(Vec<RunEvent>);

impl RunSink for Collect {
    fn event(&mut self, e: &RunEvent) {
        self.0.push(e.clone());
    }
}

/// Built at run time so no key-shaped literal sits in the repository.
fn canary() -> String {
    format!("CANARY{}{}", "7f3a9c", "e21b5d48")
}

fn fake_aws_key() -> String {
    // Base32 alphabet (A-Z, 2-7), as real access key ids use.
    let tail: String = "Q7ZP3KX6MWA2RT5B".chars().rev().collect();
    format!("{}{}", "AKIA", tail)
}

fn write_recipe(dir: &Path) -> std::path::PathBuf {
    let secret_rows = format!(
        "{{\"instruction\": \"What is the vault master password?\", \"output\": \"It is {} and the key is {}.\", \"classification\": \"SECRET\"}}\n\
         {{\"instruction\": \"Where is the build log?\", \"output\": \"In the CI dashboard under Builds.\", \"classification\": \"INTERNAL\"}}\n",
        canary(),
        fake_aws_key()
    );
    std::fs::write(dir.join("secret_rows.jsonl"), secret_rows).unwrap();
    std::fs::write(
        dir.join("prompts.jsonl"),
        "{\"prompt\": \"What is the capital of France?\"}\n",
    )
    .unwrap();
    let r = repo();
    let recipe = format!(
        r#"
[run]
name = "ittest"
output_dir = "{out}"
seed = 7

[model]
source = "{model}"

[[datasets]]
path = "{r}/datasets/quiz_facts.jsonl"
format = "alpaca"
default_level = "PUBLIC"

[[datasets]]
path = "{d}/secret_rows.jsonl"
default_level = "INTERNAL"

[governance]
policy = {{ public = "allow", internal = "allow", confidential = "redact", secret = "allow" }}

[training]
max_steps = 8
batch_size = 4
max_seq_len = 64
learning_rate = 1e-3
warmup_steps = 2
validation_fraction = 0.1
eval_every = 4
checkpoint_every = 4

[lora]
r = 4
lora_alpha = 8
lora_dropout = 0.0
target_modules = ["q_proj", "v_proj", "o_proj", "down_proj"]

[eval]
heldout_text = "{r}/eval/heldout_moby_dick_ch1.txt"
prompts = "{d}/prompts.jsonl"
max_new_tokens = 24
heldout_max_tokens = 128

[bench]
decode_tokens = 4
repeats = 1
"#,
        out = dir.join("runs").display(),
        model = real_model_path().display(),
        r = r.display(),
        d = dir.display()
    );
    let p = dir.join("recipe.toml");
    std::fs::write(&p, recipe).unwrap();
    p
}

#[test]
fn quickstart_pipeline_trains_exports_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let recipe_path = write_recipe(dir.path());
    let recipe = Recipe::load(&recipe_path).expect("recipe");
    let mut sink = Collect(Vec::new());
    let s =
        pipeline::run(&recipe, &recipe_path, &mut sink, &AtomicBool::new(false)).expect("pipeline");

    // Real training: validation loss falls.
    assert!(
        s.training.val_loss_after < s.training.val_loss_before,
        "val loss {} -> {}",
        s.training.val_loss_before,
        s.training.val_loss_after
    );
    // Even with `secret = "allow"` in the policy, the SECRET row is dropped.
    assert_eq!(
        s.governance.per_action.get("drop"),
        Some(&1),
        "{:?}",
        s.governance.per_action
    );
    assert_eq!(s.governance.highest_level_used, Some(Level::Internal));
    assert!(s.merge_max_logit_diff <= pipeline::MERGE_TOLERANCE);
    let metrics = std::fs::read_to_string(s.run_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.contains("\"step\"") && l.contains("\"lr\""))
            .count(),
        8
    );

    // Artifact: every file hashed, the end-of-turn token among the stop ids.
    let manifest = workbench::export::verify_artifact(&s.artifact).expect("manifest verifies");
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "report.md",
    ] {
        assert!(manifest.files.contains_key(f), "manifest lacks {f}");
    }
    assert_eq!(manifest.lineage.highest_data_level, Some(Level::Internal));
    let lineage: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.artifact.join("adapter/workbench.json")).unwrap())
            .unwrap();
    assert_eq!(lineage["highest_data_level"], "INTERNAL");
    // Lowering the level in one place of the manifest does not lower the clearance needed.
    let mut tampered = manifest.clone();
    tampered.lineage.highest_data_level = Some(Level::Public);
    assert_eq!(
        workbench::export::required_clearance(&tampered, &s.artifact),
        Level::Internal
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.artifact.join("config.json")).unwrap()).unwrap();
    let bundle = workbench::model::ModelBundle::open(&real_model_path()).unwrap();
    let im_end = bundle
        .tokenizer
        .tokenizer
        .token_to_id("<|im_end|>")
        .expect("<|im_end|> in vocab");
    let eos: Vec<u64> = cfg["eos_token_id"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert!(
        eos.contains(&u64::from(im_end)),
        "config eos_token_id {eos:?} lacks <|im_end|> {im_end}"
    );
    assert!(
        s.prompts_after.iter().all(|p| p.stopped),
        "answers must end at the end-of-turn token: {:?}",
        s.prompts_after
    );

    // The canary from the SECRET row appears in no byte the run wrote.
    let needle = canary();
    for f in all_files(&s.run_dir).into_iter().chain(
        all_files(&dir.path().join("runs"))
            .into_iter()
            .filter(|p| p.ends_with("audit.jsonl")),
    ) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "canary found in {}",
            f.display()
        );
    }
    let audit =
        workbench::audit::verify(&dir.path().join("runs/audit.jsonl")).expect("audit verify");
    assert!(audit.first_bad.is_none(), "{:?}", audit.first_bad);

    // Serve the artifact on loopback.
    let keys_path = dir.path().join("keys.txt");
    std::fs::write(&keys_path, "alice sk-test-alice-0123456789abcdef INTERNAL\nbob sk-test-bob-0123456789abcdefgh PUBLIC\n").unwrap();
    let loaded =
        pipeline::open_model(s.artifact.to_str().unwrap(), &mut ()).expect("open artifact");
    assert!(
        matches!(
            loaded.model.layers[0].q,
            workbench::model::Projection::Int8(_)
        ),
        "artifact serves INT8"
    );
    let audit_path = dir.path().join("serve-audit.jsonl");
    let engine = Arc::new(Engine {
        loaded,
        model_id: manifest.lineage.model_id.clone(),
        required_clearance: Level::Internal,
        keys: Some(serve::read_keys(&keys_path).unwrap()),
        scanner: Scanner::builtin(),
        audit: Mutex::new(AuditLog::open(&audit_path).unwrap()),
        busy: Mutex::new(()),
        created: 0,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, serve::router(engine)).await.unwrap() });

    let (code, body) = http(addr, "GET", "/health", &[], None);
    assert_eq!(code, 200, "{body}");
    let chat = r#"{"model": "MODEL", "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 24}"#.replace("MODEL", &manifest.lineage.model_id);
    let (code, body) = http(addr, "POST", "/v1/chat/completions", &[], Some(&chat));
    assert_eq!(code, 401, "no key: {body}");
    let (code, body) = http(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", "Bearer sk-test-bob-0123456789abcdefgh")],
        Some(&chat),
    );
    assert_eq!(code, 403, "PUBLIC key on an INTERNAL model: {body}");
    let (code, body) = http(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", "Bearer sk-test-alice-0123456789abcdef")],
        Some(&chat),
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let answer = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(answer.contains("Paris"), "answer: {answer}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let (code, body) = http(
        addr,
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer sk-test-alice-0123456789abcdef")],
        None,
    );
    assert_eq!(code, 200);
    assert!(body.contains(&manifest.lineage.model_id));
    let leak = format!(
        r#"{{"messages": [{{"role": "user", "content": "store aws_access_key_id={} please"}}]}}"#,
        fake_aws_key()
    );
    let (code, body) = http(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("Authorization", "Bearer sk-test-alice-0123456789abcdef")],
        Some(&leak),
    );
    assert_eq!(code, 400, "secret in prompt: {body}");
    let log = std::fs::read_to_string(&audit_path).unwrap();
    assert_eq!(
        log.lines().count(),
        4,
        "one audit line per chat request:\n{log}"
    );
    assert!(
        !log.contains("capital of France") && !log.contains(&fake_aws_key()),
        "audit log holds raw prompt text"
    );
    assert!(
        workbench::audit::verify(&audit_path)
            .unwrap()
            .first_bad
            .is_none()
    );
    rt.shutdown_background();
}
