//! Model configuration: the serde mirror of Hugging Face `config.json`, the GGUF metadata
//! reader, and the validated runtime [`LlamaConfig`] both convert into.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::gguf::GgufFile;

/// The architectures one implementation covers, selected by configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Llama 2/3, SmolLM.
    Llama,
    /// Mistral (optional sliding-window attention).
    Mistral,
    /// Qwen2 (bias on the q, k and v projections).
    Qwen2,
}

impl Arch {
    /// The `model_type` string Hugging Face uses for this architecture.
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Mistral => "mistral",
            Arch::Qwen2 => "qwen2",
        }
    }

    /// The `architectures[0]` class name Hugging Face uses.
    pub fn hf_class(self) -> &'static str {
        match self {
            Arch::Llama => "LlamaForCausalLM",
            Arch::Mistral => "MistralForCausalLM",
            Arch::Qwen2 => "Qwen2ForCausalLM",
        }
    }
}

/// Llama 3.x frequency-dependent RoPE scaling (`rope_scaling.rope_type == "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Llama3RopeScaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

/// The validated runtime configuration of a Llama-family decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3RopeScaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v projections (Qwen2).
    pub attention_bias: bool,
    /// Sliding-window attention span (Mistral), if any.
    pub sliding_window: Option<usize>,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

impl LlamaConfig {
    /// Checks invariants the forward pass relies on; the error names the offending field.
    pub fn validate(&self, origin: &str) -> Result<(), ModelError> {
        let bad = |field: &str, why: String| ModelError::Config {
            origin: origin.to_string(),
            field: field.to_string(),
            why,
        };
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_layers),
            ("num_attention_heads", self.num_heads),
            ("num_key_value_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
        ] {
            if v == 0 {
                return Err(bad(field, "must be > 0 (got 0)".into()));
            }
        }
        if self.num_heads % self.num_kv_heads != 0 {
            return Err(bad(
                "num_key_value_heads",
                format!(
                    "must divide num_attention_heads {} (got {})",
                    self.num_heads, self.num_kv_heads
                ),
            ));
        }
        if self.head_dim % 2 != 0 {
            return Err(bad(
                "head_dim",
                format!("must be even for RoPE (got {})", self.head_dim),
            ));
        }
        if !(self.rope_theta > 0.0) {
            return Err(bad(
                "rope_theta",
                format!("must be > 0 (got {})", self.rope_theta),
            ));
        }
        if !(self.rms_norm_eps > 0.0) {
            return Err(bad(
                "rms_norm_eps",
                format!("must be > 0 (got {})", self.rms_norm_eps),
            ));
        }
        Ok(())
    }

    /// Number of attention heads sharing one key/value head.
    pub fn kv_groups(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }

    /// Parses a Hugging Face `config.json`.
    pub fn from_hf_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let raw: HfConfig = serde_json::from_str(&text).map_err(|e| ModelError::Json {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let cfg = raw.into_runtime(&path.display().to_string())?;
        cfg.validate(&path.display().to_string())?;
        Ok(cfg)
    }

    /// Reads the configuration from GGUF metadata (`general.architecture` prefixed keys).
    pub fn from_gguf(file: &GgufFile, origin: &str) -> Result<Self, ModelError> {
        let missing = |key: &str| ModelError::Config {
            origin: origin.to_string(),
            field: key.to_string(),
            why: "missing from GGUF metadata".into(),
        };
        let arch_name = file
            .get_str("general.architecture")
            .ok_or_else(|| missing("general.architecture"))?
            .to_string();
        let arch = match arch_name.as_str() {
            "llama" => Arch::Llama,
            "mistral" => Arch::Mistral,
            "qwen2" => Arch::Qwen2,
            other => {
                return Err(ModelError::Config {
                    origin: origin.to_string(),
                    field: "general.architecture".into(),
                    why: format!(
                        "unsupported architecture {other:?} (supported: llama, mistral, qwen2)"
                    ),
                });
            }
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let req = |k: &str| -> Result<usize, ModelError> {
            file.get_u64(&key(k))
                .map(|v| v as usize)
                .ok_or_else(|| missing(&key(k)))
        };
        let hidden_size = req("embedding_length")?;
        let num_heads = req("attention.head_count")?;
        let num_kv_heads = file
            .get_u64(&key("attention.head_count_kv"))
            .map(|v| v as usize)
            .unwrap_or(num_heads);
        let head_dim = file
            .get_u64(&key("attention.key_length"))
            .map(|v| v as usize)
            .unwrap_or(hidden_size / num_heads.max(1));
        let vocab_size = match file.get_u64(&key("vocab_size")) {
            Some(v) => v as usize,
            None => file
                .get_array("tokenizer.ggml.tokens")
                .map(|a| a.len())
                .ok_or_else(|| missing(&key("vocab_size")))?,
        };
        let has_head = file.tensor("output.weight").is_some();
        let rope_scaling = match file.get_str(&key("rope.scaling.type")) {
            None | Some("none") => None,
            Some(other) => {
                return Err(ModelError::Config {
                    origin: origin.to_string(),
                    field: key("rope.scaling.type"),
                    why: format!("unsupported RoPE scaling {other:?}"),
                });
            }
        };
        let cfg = LlamaConfig {
            arch,
            vocab_size,
            hidden_size,
            intermediate_size: req("feed_forward_length")?,
            num_layers: req("block_count")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: file
                .get_f32(&key("attention.layer_norm_rms_epsilon"))
                .map(f64::from)
                .ok_or_else(|| missing(&key("attention.layer_norm_rms_epsilon")))?,
            rope_theta: file
                .get_f32(&key("rope.freq_base"))
                .map(f64::from)
                .unwrap_or(10_000.0),
            rope_scaling,
            max_position_embeddings: file
                .get_u64(&key("context_length"))
                .map(|v| v as usize)
                .unwrap_or(2048),
            tie_word_embeddings: !has_head,
            attention_bias: file.tensor("blk.0.attn_q.bias").is_some(),
            sliding_window: file
                .get_u64(&key("attention.sliding_window"))
                .map(|v| v as usize),
            bos_token_id: file
                .get_u64("tokenizer.ggml.bos_token_id")
                .map(|v| v as u32),
            eos_token_ids: file
                .get_u64("tokenizer.ggml.eos_token_id")
                .map(|v| vec![v as u32])
                .unwrap_or_default(),
        };
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// The Hugging Face `config.json` for this model, as written into exported artifacts.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "architectures": [self.arch.hf_class()],
            "model_type": self.arch.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": self.attention_bias,
            "hidden_act": "silu",
            "torch_dtype": "float32",
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_ids,
        });
        if let Some(s) = self.rope_scaling {
            v["rope_scaling"] = serde_json::json!({
                "rope_type": "llama3",
                "factor": s.factor,
                "low_freq_factor": s.low_freq_factor,
                "high_freq_factor": s.high_freq_factor,
                "original_max_position_embeddings": s.original_max_position_embeddings,
            });
        }
        if let Some(w) = self.sliding_window {
            v["sliding_window"] = w.into();
        }
        v
    }
}

/// A token id or a list of them, as `eos_token_id` appears in configs.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

/// The subset of Hugging Face `config.json` the workbench reads. Unknown keys are ignored
/// (configs carry many unrelated ones) but every key that changes the model is checked.
#[derive(Debug, Clone, Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    /// transformers >= 5 writes `rope_parameters` (with `rope_theta` inside) instead.
    rope_parameters: Option<serde_json::Value>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    hidden_act: Option<String>,
    sliding_window: Option<serde_json::Value>,
    use_sliding_window: Option<bool>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<OneOrMany>,
}

impl HfConfig {
    fn into_runtime(self, origin: &str) -> Result<LlamaConfig, ModelError> {
        let bad = |field: &str, why: String| ModelError::Config {
            origin: origin.to_string(),
            field: field.to_string(),
            why,
        };
        let model_type = self
            .model_type
            .clone()
            .or_else(|| {
                self.architectures
                    .as_ref()
                    .and_then(|a| a.first())
                    .map(|c| c.trim_end_matches("ForCausalLM").to_ascii_lowercase())
            })
            .ok_or_else(|| bad("model_type", "missing".into()))?;
        let arch = match model_type.as_str() {
            "llama" => Arch::Llama,
            "mistral" => Arch::Mistral,
            "qwen2" => Arch::Qwen2,
            other => {
                return Err(bad(
                    "model_type",
                    format!("unsupported {other:?} (supported: llama, mistral, qwen2)"),
                ));
            }
        };
        if let Some(act) = &self.hidden_act {
            if act != "silu" {
                return Err(bad(
                    "hidden_act",
                    format!("only \"silu\" is supported (got {act:?})"),
                ));
            }
        }
        if self.mlp_bias == Some(true) {
            return Err(bad(
                "mlp_bias",
                "MLP bias is not supported (got true)".into(),
            ));
        }
        let scaling_key = if self.rope_scaling.is_some() {
            "rope_scaling"
        } else {
            "rope_parameters"
        };
        let rope_scaling = match self.rope_scaling.as_ref().or(self.rope_parameters.as_ref()) {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => {
                let kind = v
                    .get("rope_type")
                    .or_else(|| v.get("type"))
                    .and_then(|t| t.as_str())
                    .unwrap_or("");
                match kind {
                    "llama3" => {
                        let num = |k: &str| {
                            v.get(k).and_then(|x| x.as_f64()).ok_or_else(|| {
                                bad(
                                    &format!("{scaling_key}.{k}"),
                                    "missing or not a number".into(),
                                )
                            })
                        };
                        Some(Llama3RopeScaling {
                            factor: num("factor")?,
                            low_freq_factor: num("low_freq_factor")?,
                            high_freq_factor: num("high_freq_factor")?,
                            original_max_position_embeddings: num(
                                "original_max_position_embeddings",
                            )?
                                as usize,
                        })
                    }
                    "default" | "" => None,
                    other => {
                        return Err(bad(
                            &format!("{scaling_key}.rope_type"),
                            format!("unsupported {other:?} (supported: llama3, default)"),
                        ));
                    }
                }
            }
        };
        let sliding_window = match (arch, &self.sliding_window, self.use_sliding_window) {
            (_, _, Some(false)) => None,
            (Arch::Qwen2, _, None) => None,
            (_, Some(serde_json::Value::Number(n)), _) => n.as_u64().map(|v| v as usize),
            _ => None,
        };
        let num_kv_heads = self.num_key_value_heads.unwrap_or(self.num_attention_heads);
        let head_dim = self
            .head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1));
        Ok(LlamaConfig {
            arch,
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_hidden_layers,
            num_heads: self.num_attention_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: self
                .rope_theta
                .or_else(|| {
                    self.rope_parameters
                        .as_ref()
                        .and_then(|p| p.get("rope_theta"))
                        .and_then(|t| t.as_f64())
                })
                .unwrap_or(10_000.0),
            rope_scaling,
            max_position_embeddings: self.max_position_embeddings.unwrap_or(2048),
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(false),
            attention_bias: self.attention_bias.unwrap_or(arch == Arch::Qwen2),
            sliding_window,
            bos_token_id: self.bos_token_id,
            eos_token_ids: match self.eos_token_id {
                None => vec![],
                Some(OneOrMany::One(id)) => vec![id],
                Some(OneOrMany::Many(ids)) => ids,
            },
        })
    }
}
