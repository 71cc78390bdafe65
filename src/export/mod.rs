//! Servable artifacts: weights (f32, or INT8 with per-row scales) in safetensors, HF config
//! with the end-of-turn token among the stop ids, tokenizer, chat template, the PEFT
//! adapter, `manifest.json` (sha256 of every file, lineage, data level, eval and bench) and
//! `report.md`. Everything is written into a temporary folder and renamed into place, so a
//! failed export leaves nothing half-written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::to_vec;
use crate::model::llama::{Block, PROJECTION_NAMES};
use crate::model::{Llama, LlamaConfig, ModelError, Projection};

/// Marker in `config.json` for INT8 artifacts.
pub const INT8_QUANT_METHOD: &str = "workbench-int8";
/// Suffix of the per-row scale tensor that sits beside each INT8 weight.
pub const SCALE_SUFFIX: &str = "_scale";
/// Manifest format identifier.
pub const MANIFEST_FORMAT: &str = "workbench-artifact/1";

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// One tensor to write: name, dtype, shape, little-endian bytes.
pub struct RawTensor {
    pub name: String,
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Writes tensors to a safetensors file atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &[RawTensor],
    metadata: Option<BTreeMap<String, String>>,
) -> Result<(), String> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| format!("tensor {}: {e}", t.name))
        })
        .collect::<Result<_, _>>()?;
    let meta = metadata.map(|m| m.into_iter().collect());
    let bytes = safetensors::serialize(views, meta).map_err(|e| e.to_string())?;
    write_atomic(path, &bytes).map_err(|e| e.to_string())
}

/// Writes f32 tensors `(name, bytes, shape)` to a safetensors file atomically.
pub fn write_safetensors_f32(
    path: &Path,
    tensors: &[(String, Vec<u8>, Vec<usize>)],
) -> Result<(), String> {
    let raw: Vec<RawTensor> = tensors
        .iter()
        .map(|(n, b, s)| RawTensor {
            name: n.clone(),
            dtype: safetensors::Dtype::F32,
            shape: s.clone(),
            bytes: b.clone(),
        })
        .collect();
    write_safetensors(path, &raw, None)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32_tensor(name: &str, shape: Vec<usize>, data: &[f32]) -> RawTensor {
    RawTensor {
        name: name.into(),
        dtype: safetensors::Dtype::F32,
        shape,
        bytes: f32_bytes(data),
    }
}

/// The tensors of a model in HF naming; INT8 projections as I8 weight + F32 `weight_scale`.
pub fn model_tensors(model: &Llama) -> Vec<RawTensor> {
    let cfg = &model.config;
    let mut out = vec![f32_tensor(
        "model.embed_tokens.weight",
        vec![cfg.vocab_size, cfg.hidden_size],
        &to_vec(model.embed.clone()),
    )];
    let push_proj = |out: &mut Vec<RawTensor>, base: &str, p: &Projection| match p {
        Projection::Int8(q) => {
            let rows = q.rows_unpadded();
            out.push(RawTensor {
                name: format!("{base}.weight"),
                dtype: safetensors::Dtype::I8,
                shape: vec![q.out_features(), q.in_features()],
                bytes: rows.iter().map(|&v| v as u8).collect(),
            });
            out.push(f32_tensor(
                &format!("{base}.weight{SCALE_SUFFIX}"),
                vec![q.out_features()],
                q.scales(),
            ));
            if let Some(b) = q.bias() {
                out.push(f32_tensor(&format!("{base}.bias"), vec![b.len()], b));
            }
        }
        other => {
            if let Some((rows, o, i, bias)) = crate::quant::dense_rows(other) {
                out.push(f32_tensor(&format!("{base}.weight"), vec![o, i], &rows));
                if let Some(b) = bias {
                    out.push(f32_tensor(&format!("{base}.bias"), vec![b.len()], &b));
                }
            }
        }
    };
    for (i, layer) in model.layers.iter().enumerate() {
        for name in PROJECTION_NAMES {
            if let Some(p) = layer.projection(name) {
                push_proj(&mut out, &Block::hf_path(i, name), p);
            }
        }
        out.push(f32_tensor(
            &format!("model.layers.{i}.input_layernorm.weight"),
            vec![cfg.hidden_size],
            &to_vec(layer.attn_norm.clone()),
        ));
        out.push(f32_tensor(
            &format!("model.layers.{i}.post_attention_layernorm.weight"),
            vec![cfg.hidden_size],
            &to_vec(layer.mlp_norm.clone()),
        ));
    }
    out.push(f32_tensor(
        "model.norm.weight",
        vec![cfg.hidden_size],
        &to_vec(model.final_norm.clone()),
    ));
    let head_is_int8 = matches!(model.lm_head, Projection::Int8(_));
    if head_is_int8 || !cfg.tie_word_embeddings {
        push_proj(&mut out, "lm_head", &model.lm_head);
    }
    out
}

/// Per-file sha256 entries of the manifest.
pub type FileHashes = BTreeMap<String, String>;

/// What a run records about an artifact: identity, lineage, data level and results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lineage {
    pub run_id: String,
    pub model_id: String,
    pub base_model: serde_json::Value,
    /// Highest classification level of any row that went into training.
    pub highest_data_level: Option<crate::data::classify::Level>,
    pub data: serde_json::Value,
    pub recipe: serde_json::Value,
    pub training: serde_json::Value,
    pub eval: serde_json::Value,
    pub bench: serde_json::Value,
}

/// The artifact's manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub created: String,
    #[serde(flatten)]
    pub lineage: Lineage,
    pub quantization: Option<String>,
    pub files: FileHashes,
}

/// Everything an export needs besides the model.
pub struct ExportInputs<'a> {
    pub lineage: Lineage,
    pub tokenizer_json: &'a tokenizers::Tokenizer,
    pub chat_template: &'a str,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub stop_ids: Vec<u32>,
    /// The adapter, its settings and its lineage (`adapter/workbench.json`).
    pub adapter: Option<(
        &'a crate::lora::LoraConfig,
        &'a crate::lora::AdapterWeights,
        serde_json::Value,
    )>,
    pub report_md: String,
}

/// Export failures.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {why}")]
    Write { path: String, why: String },
}

fn werr(p: &Path, why: impl ToString) -> ExportError {
    ExportError::Write {
        path: p.display().to_string(),
        why: why.to_string(),
    }
}

/// Writes the artifact folder `dest` (which must not exist yet) and returns its manifest.
pub fn export(
    model: &Llama,
    inputs: &ExportInputs<'_>,
    dest: &Path,
) -> Result<Manifest, ExportError> {
    let tmp = dest.with_file_name(format!(
        "{}.partial",
        dest.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("artifact")
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| werr(&tmp, e))?;
    let result = write_all(model, inputs, &tmp);
    match result {
        Ok(manifest) => {
            if dest.exists() {
                std::fs::remove_dir_all(dest).map_err(|e| werr(dest, e))?;
            }
            std::fs::rename(&tmp, dest).map_err(|e| werr(dest, e))?;
            Ok(manifest)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

fn write_all(
    model: &Llama,
    inputs: &ExportInputs<'_>,
    dir: &Path,
) -> Result<Manifest, ExportError> {
    let quantized = matches!(model.lm_head, Projection::Int8(_));
    let weights = dir.join("model.safetensors");
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    write_safetensors(&weights, &model_tensors(model), Some(meta))
        .map_err(|e| werr(&weights, e))?;
    let mut cfg = model.config.clone();
    // The end-of-turn token is a stop id beside the base EOS, so a server that reads only
    // the artifact stops at the end of a turn.
    for id in &inputs.stop_ids {
        if !cfg.eos_token_ids.contains(id) {
            cfg.eos_token_ids.push(*id);
        }
    }
    let mut config_json = cfg.to_hf_json();
    if quantized {
        config_json["tie_word_embeddings"] = false.into();
        config_json["quantization_config"] = serde_json::json!({
            "quant_method": INT8_QUANT_METHOD,
            "bits": 8,
            "scheme": "symmetric per-output-channel weights; activations per block of 32 at run time",
            "scale_suffix": SCALE_SUFFIX,
        });
    }
    let json = |v: &serde_json::Value| serde_json::to_vec_pretty(v).unwrap_or_default();
    let put = |name: &str, bytes: &[u8]| -> Result<(), ExportError> {
        let p = dir.join(name);
        write_atomic(&p, bytes).map_err(|e| werr(&p, e))
    };
    put("config.json", &json(&config_json))?;
    put(
        "generation_config.json",
        &json(&serde_json::json!({
            "bos_token_id": cfg.bos_token_id,
            "eos_token_id": cfg.eos_token_ids,
            "do_sample": false,
        })),
    )?;
    let tok_path = dir.join("tokenizer.json");
    let tok = inputs
        .tokenizer_json
        .to_string(false)
        .map_err(|e| werr(&tok_path, e))?;
    put("tokenizer.json", tok.as_bytes())?;
    put(
        "tokenizer_config.json",
        &json(&serde_json::json!({
            "chat_template": inputs.chat_template,
            "bos_token": inputs.bos_token,
            "eos_token": inputs.eos_token,
            "add_bos_token": false,
        })),
    )?;
    put("chat_template.jinja", inputs.chat_template.as_bytes())?;
    if let Some((lcfg, w, lineage)) = &inputs.adapter {
        let adir = dir.join("adapter");
        crate::lora::save_peft(&adir, lcfg, w, &inputs.lineage.model_id)
            .and_then(|_| crate::lora::save_lineage(&adir, lineage))
            .map_err(|e| werr(&adir, e))?;
    }
    put("report.md", inputs.report_md.as_bytes())?;
    let files = hash_tree(dir).map_err(|e| werr(dir, e))?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        created: crate::audit::now_rfc3339(),
        lineage: inputs.lineage.clone(),
        quantization: quantized.then(|| INT8_QUANT_METHOD.to_string()),
        files,
    };

    put(
        "manifest.json",
        &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    )?;
    Ok(manifest)
}

/// sha256 of every file under `dir` (relative paths), excluding the manifest itself.
pub fn hash_tree(dir: &Path) -> Result<FileHashes, String> {
    let mut out = FileHashes::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let p = e.map_err(|e| e.to_string())?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .replace('\\', "/");
                if rel == "manifest.json" {
                    continue;
                }
                out.insert(
                    rel,
                    crate::model::sha256_file(&p).map_err(|e| e.to_string())?,
                );
            }
        }
    }
    Ok(out)
}

/// Reads and verifies an artifact's manifest: every listed file exists with its sha256.
pub fn verify_artifact(dir: &Path) -> Result<Manifest, ModelError> {
    let mpath = dir.join("manifest.json");
    let text = std::fs::read_to_string(&mpath).map_err(|e| ModelError::io(&mpath, e))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| ModelError::Json {
        path: mpath.display().to_string(),
        why: e.to_string(),
    })?;
    for (rel, want) in &manifest.files {
        let p = dir.join(rel);
        let got = crate::model::sha256_file(&p)?;
        if &got != want {
            return Err(ModelError::Corrupt {
                path: p.display().to_string(),
                why: format!("sha256 {got} does not match the manifest's {want}"),
            });
        }
    }
    Ok(manifest)
}

/// The clearance a caller needs for an artifact: the highest data level recorded anywhere
/// in it (the manifest's field, the governance report inside the manifest, and the
/// adapter's lineage file, whose hash the manifest lists), so that editing one of them does
/// not lower it. Artifacts are not signed yet: whoever can rewrite all of them consistently
/// can also rewrite the weights.
pub fn required_clearance(manifest: &Manifest, dir: &Path) -> crate::data::classify::Level {
    use crate::data::classify::Level;
    let parse = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<Level>().ok());
    let mut level = manifest.lineage.highest_data_level.unwrap_or(Level::Public);
    let governance = &manifest.lineage.data["governance"];
    if let Some(l) = parse(&governance["highest_level_used"]) {
        level = level.max(l);
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("adapter/workbench.json")) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            if let Some(l) = parse(&v["highest_data_level"]) {
                level = level.max(l);
            }
        }
    }
    level
}

/// The config stored in an artifact.
pub fn artifact_config(dir: &Path) -> Result<LlamaConfig, ModelError> {
    LlamaConfig::from_hf_file(&dir.join("config.json"))
}
