//! LoRA adapters: attaching them to the model's projections, reading their tensors, merging,
//! and the PEFT on-disk format (`adapter_config.json` + `adapter_model.safetensors`) so
//! adapters move between the workbench and Hugging Face PEFT unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::backend::to_vec;
use crate::model::llama::{Block, PROJECTION_NAMES};
use crate::model::{Dense, Llama, LoraLinear, Projection};

/// LoRA hyper-parameters, with PEFT's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub target_modules: Vec<String>,
}

impl LoraConfig {
    /// `lora_alpha / r`.
    pub fn scale(&self) -> f64 {
        self.lora_alpha / self.r as f64
    }
}

/// Errors reading or writing adapters.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("{path}: {why}")]
    File { path: String, why: String },
    #[error("{path}: tensor `{tensor}`: {why}")]
    Tensor {
        path: String,
        tensor: String,
        why: String,
    },
}

/// Host copy of one adapter pair in PEFT layout: `A` `[r, in]`, `B` `[out, r]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterPair {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub r: usize,
    pub in_features: usize,
    pub out_features: usize,
}

/// Adapter weights keyed by HF module path (`model.layers.3.self_attn.q_proj`).
pub type AdapterWeights = BTreeMap<String, AdapterPair>;

/// Replaces every targeted dense projection with a LoRA projection: `A` drawn like PEFT's
/// default (uniform ±1/√in), `B` zero, so the adapted model starts equal to the base. On an
/// autodiff device the adapter tensors are marked trainable.
pub fn attach(model: &mut Llama, cfg: &LoraConfig, device: &Device) {
    for layer in &mut model.layers {
        for name in PROJECTION_NAMES {
            if !cfg.target_modules.iter().any(|t| t == name) {
                continue;
            }
            let Some(p) = layer.projection_mut(name) else {
                continue;
            };
            if let Projection::Dense(d) = p {
                let (inp, out) = (d.in_features(), d.out_features());
                let bound = 1.0 / (inp as f64).sqrt();
                let a = trainable(Tensor::<2>::random(
                    [inp, cfg.r],
                    Distribution::Uniform(-bound, bound),
                    device,
                ));
                let b = trainable(Tensor::<2>::zeros([cfg.r, out], device));
                *p = Projection::Lora(LoraLinear {
                    base: d.clone(),
                    a,
                    b,
                    scale: cfg.scale(),
                    dropout: cfg.lora_dropout,
                    training: true,
                });
            }
        }
    }
}

/// Marks a tensor for gradients when it lives on an autodiff device.
fn trainable(t: Tensor<2>) -> Tensor<2> {
    if t.is_autodiff() { t.require_grad() } else { t }
}

/// Attaches given adapter weights (e.g. trained, or read from PEFT files) for inference.
pub fn attach_weights(
    model: &mut Llama,
    cfg: &LoraConfig,
    weights: &AdapterWeights,
    device: &Device,
) -> Result<(), String> {
    for (i, layer) in model.layers.iter_mut().enumerate() {
        for name in PROJECTION_NAMES {
            let path = Block::hf_path(i, name);
            let Some(pair) = weights.get(&path) else {
                continue;
            };
            let Some(p) = layer.projection_mut(name) else {
                continue;
            };
            let Projection::Dense(d) = p else {
                return Err(format!(
                    "{path}: projection is not dense; cannot attach an adapter"
                ));
            };
            if d.in_features() != pair.in_features || d.out_features() != pair.out_features {
                return Err(format!(
                    "{path}: adapter is {}x{} but the layer is {}x{}",
                    pair.out_features,
                    pair.in_features,
                    d.out_features(),
                    d.in_features()
                ));
            }
            // PEFT A is [r, in]; ours is [in, r]. PEFT B is [out, r]; ours is [r, out].
            let a = transpose(&pair.a, pair.r, pair.in_features);
            let b = transpose(&pair.b, pair.out_features, pair.r);
            *p = Projection::Lora(LoraLinear {
                base: d.clone(),
                a: Tensor::from_data(TensorData::new(a, [pair.in_features, pair.r]), device),
                b: Tensor::from_data(TensorData::new(b, [pair.r, pair.out_features]), device),
                scale: cfg.scale(),
                dropout: 0.0,
                training: false,
            });
        }
    }
    Ok(())
}

fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// Switches dropout on or off in every adapter.
pub fn set_training(model: &mut Llama, training: bool) {
    for layer in &mut model.layers {
        for name in PROJECTION_NAMES {
            if let Some(Projection::Lora(l)) = layer.projection_mut(name) {
                l.training = training;
            }
        }
    }
}

/// Host copies of every adapter in PEFT layout.
pub fn extract(model: &Llama) -> AdapterWeights {
    let mut out = AdapterWeights::new();
    for (i, layer) in model.layers.iter().enumerate() {
        for name in PROJECTION_NAMES {
            if let Some(Projection::Lora(l)) = layer.projection(name) {
                let [inp, r] = l.a.dims();
                let out_f = l.b.dims()[1];
                let a = transpose(&to_vec(l.a.clone().detach()), inp, r);
                let b = transpose(&to_vec(l.b.clone().detach()), r, out_f);
                out.insert(
                    Block::hf_path(i, name),
                    AdapterPair {
                        a,
                        b,
                        r,
                        in_features: inp,
                        out_features: out_f,
                    },
                );
            }
        }
    }
    out
}

/// Merges every adapter into its base weight, `W + s·A·B`, accumulated in f64 on the host
/// and rounded once to f32, so the merged model reproduces base + adapter as closely as f32
/// allows.
pub fn merge(model: &Llama) -> Llama {
    let mut merged = model.clone();
    for layer in &mut merged.layers {
        for (_, p) in layer.projections_mut() {
            if let Projection::Lora(l) = p {
                let [inp, out] = l.base.weight.dims();
                let r = l.rank();
                let w = to_vec(l.base.weight.clone());
                let a = to_vec(l.a.clone().detach());
                let b = to_vec(l.b.clone().detach());
                let mut m = vec![0.0f32; w.len()];
                for i in 0..inp {
                    let arow = &a[i * r..(i + 1) * r];
                    for o in 0..out {
                        let mut acc = 0.0f64;
                        for k in 0..r {
                            acc += f64::from(arow[k]) * f64::from(b[k * out + o]);
                        }
                        m[i * out + o] = (f64::from(w[i * out + o]) + l.scale * acc) as f32;
                    }
                }
                let device = l.base.weight.device();
                let weight = Tensor::from_data(TensorData::new(m, [inp, out]), &device);
                *p = Projection::Dense(Dense {
                    weight,
                    bias: l.base.bias.clone(),
                });
            }
        }
    }
    merged
}

/// PEFT tensor name of an adapter matrix.
fn peft_key(module: &str, which: &str) -> String {
    format!("base_model.model.{module}.lora_{which}.weight")
}

/// Writes `adapter_config.json` and `adapter_model.safetensors` in PEFT's format.
pub fn save_peft(
    dir: &Path,
    cfg: &LoraConfig,
    weights: &AdapterWeights,
    base_model: &str,
) -> Result<(), LoraError> {
    let ferr = |p: &Path, why: String| LoraError::File {
        path: p.display().to_string(),
        why,
    };
    std::fs::create_dir_all(dir).map_err(|e| ferr(dir, e.to_string()))?;
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": cfg.r,
        "lora_alpha": cfg.lora_alpha,
        "lora_dropout": cfg.lora_dropout,
        "target_modules": cfg.target_modules,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
        "init_lora_weights": true,
    });
    let cfg_path = dir.join("adapter_config.json");
    crate::export::write_atomic(
        &cfg_path,
        serde_json::to_string_pretty(&config)
            .unwrap_or_default()
            .as_bytes(),
    )
    .map_err(|e| ferr(&cfg_path, e.to_string()))?;
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (module, p) in weights {
        tensors.push((
            peft_key(module, "A"),
            f32_bytes(&p.a),
            vec![p.r, p.in_features],
        ));
        tensors.push((
            peft_key(module, "B"),
            f32_bytes(&p.b),
            vec![p.out_features, p.r],
        ));
    }
    let path = dir.join("adapter_model.safetensors");
    crate::export::write_safetensors_f32(&path, &tensors).map_err(|e| ferr(&path, e))
}

/// Writes `workbench.json` beside a PEFT adapter: lineage PEFT does not carry (the highest
/// data classification that trained it, the base model hash, the data fingerprint).
pub fn save_lineage(dir: &Path, lineage: &serde_json::Value) -> Result<(), LoraError> {
    let p = dir.join("workbench.json");
    crate::export::write_atomic(
        &p,
        serde_json::to_string_pretty(lineage)
            .unwrap_or_default()
            .as_bytes(),
    )
    .map_err(|e| LoraError::File {
        path: p.display().to_string(),
        why: e.to_string(),
    })
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Reads a PEFT adapter folder.
pub fn load_peft(dir: &Path) -> Result<(LoraConfig, AdapterWeights), LoraError> {
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| LoraError::File {
        path: cfg_path.display().to_string(),
        why: e.to_string(),
    })?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| LoraError::File {
        path: cfg_path.display().to_string(),
        why: e.to_string(),
    })?;
    let field = |k: &str| {
        v.get(k).ok_or_else(|| LoraError::File {
            path: cfg_path.display().to_string(),
            why: format!("key `{k}` missing"),
        })
    };
    let r = field("r")?.as_u64().unwrap_or(0) as usize;
    let cfg = LoraConfig {
        r,
        lora_alpha: field("lora_alpha")?.as_f64().unwrap_or(r as f64),
        lora_dropout: v
            .get("lora_dropout")
            .and_then(|x| x.as_f64())
            .unwrap_or(0.0),
        target_modules: match field("target_modules")? {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            serde_json::Value::String(s) => vec![s.clone()],
            _ => vec![],
        },
    };
    for key in ["rank_pattern", "alpha_pattern"] {
        if v.get(key)
            .and_then(|x| x.as_object())
            .is_some_and(|m| !m.is_empty())
        {
            return Err(LoraError::File {
                path: cfg_path.display().to_string(),
                why: format!("`{key}` (per-module rank or alpha) is not supported yet"),
            });
        }
    }
    if v.get("use_dora").and_then(|x| x.as_bool()) == Some(true)
        || v.get("use_rslora").and_then(|x| x.as_bool()) == Some(true)
    {
        return Err(LoraError::File {
            path: cfg_path.display().to_string(),
            why: "DoRA / rsLoRA adapters are not supported".into(),
        });
    }
    let path = dir.join("adapter_model.safetensors");
    let bytes = std::fs::read(&path).map_err(|e| LoraError::File {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| LoraError::File {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    let mut weights = AdapterWeights::new();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    for name in names.iter().filter(|n| n.ends_with(".lora_A.weight")) {
        let module = name
            .trim_start_matches("base_model.model.")
            .trim_end_matches(".lora_A.weight")
            .to_string();
        let b_name = name.replace(".lora_A.weight", ".lora_B.weight");
        let read = |n: &str| -> Result<(Vec<f32>, Vec<usize>), LoraError> {
            let t = st.tensor(n).map_err(|e| LoraError::Tensor {
                path: path.display().to_string(),
                tensor: n.into(),
                why: e.to_string(),
            })?;
            let data = match t.dtype() {
                safetensors::Dtype::F32 => t
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                safetensors::Dtype::F16 => t
                    .data()
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                safetensors::Dtype::BF16 => t
                    .data()
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                other => {
                    return Err(LoraError::Tensor {
                        path: path.display().to_string(),
                        tensor: n.into(),
                        why: format!("unsupported dtype {other:?}"),
                    });
                }
            };
            Ok((data, t.shape().to_vec()))
        };
        let (a, sa) = read(name)?;
        let (b, sb) = read(&b_name)?;
        if sa.len() != 2 || sb.len() != 2 || sa[0] != sb[1] {
            return Err(LoraError::Tensor {
                path: path.display().to_string(),
                tensor: name.clone(),
                why: format!("A {sa:?} and B {sb:?} do not form a rank-r pair"),
            });
        }
        weights.insert(
            module,
            AdapterPair {
                a,
                b,
                r: sa[0],
                in_features: sa[1],
                out_features: sb[0],
            },
        );
    }
    Ok((cfg, weights))
}
