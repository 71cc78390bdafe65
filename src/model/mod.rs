//! Llama-family models: configuration, weight import (GGUF, Hugging Face), tokenizer,
//! model sources (local path, Hugging Face cache, pip packages) and the burn decoder.

pub mod config;
pub mod gguf;
pub mod linear;
pub mod llama;
pub mod source;
pub mod tokenizer;
pub mod weights;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use config::{Arch, LlamaConfig};
pub use linear::{Dense, LoraLinear, Projection};
pub use llama::{KvCache, Llama};
pub use tokenizer::TokenizerBundle;
pub use weights::{
    GgufSource, HostTensor, LoadReport, SafetensorsSource, WeightSource, load_llama,
};

/// Everything that can go wrong while finding, reading or building a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {why}")]
    Json { path: String, why: String },
    #[error("{origin}: config field `{field}`: {why}")]
    Config {
        origin: String,
        field: String,
        why: String,
    },
    #[error("{origin}: tensor `{tensor}` is missing")]
    MissingTensor { origin: String, tensor: String },
    #[error("{origin}: tensor `{tensor}` has shape {got:?}, expected {expected:?}")]
    Shape {
        origin: String,
        tensor: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("{origin}: tensor `{tensor}`: {why}")]
    Dtype {
        origin: String,
        tensor: String,
        why: String,
    },
    #[error("{path}: corrupt or truncated: {why}")]
    Corrupt { path: String, why: String },
    #[error("{path}: not found: {why}")]
    MissingFile { path: String, why: String },
    #[error("model source `{source_spec}`: {why}")]
    Source { source_spec: String, why: String },
    #[error(transparent)]
    Gguf(#[from] gguf::GgufError),
    #[error(transparent)]
    Tokenizer(#[from] tokenizer::TokenizerError),
}

impl ModelError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A model found on disk, ready to build on any device: config, tokenizer, weights.
pub struct ModelBundle {
    pub config: LlamaConfig,
    pub tokenizer: TokenizerBundle,
    pub weights: Box<dyn WeightSource + Send + Sync>,
    /// The `.gguf` file or the Hugging Face folder.
    pub path: PathBuf,
    /// sha256 over the weight file(s), for lineage.
    pub sha256: String,
    /// "gguf" or "hf".
    pub format: &'static str,
}

/// sha256 of a large model file, remembered in the workbench cache by path, size and
/// modification time so that opening the same model again does not re-read it.
pub fn sha256_file_cached(path: &Path) -> Result<String, ModelError> {
    let meta = std::fs::metadata(path).map_err(|e| ModelError::io(path, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let key = hex::encode(Sha256::digest(
        format!("{}|{}|{mtime}", canonical.display(), meta.len()).as_bytes(),
    ));
    let stamp = source::cache_dir().join("hashes").join(key);
    if let Ok(h) = std::fs::read_to_string(&stamp) {
        if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(h);
        }
    }
    let h = sha256_file(path)?;
    let _ = crate::export::write_atomic(&stamp, h.as_bytes());
    Ok(h)
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| ModelError::io(path, e))?;
    Ok(hex::encode(h.finalize()))
}

impl ModelBundle {
    /// Opens a local `.gguf` file or Hugging Face model folder.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        if !path.exists() {
            return Err(ModelError::MissingFile {
                path: path.display().to_string(),
                why: "no such file or folder".into(),
            });
        }
        if path.is_dir() {
            let config = LlamaConfig::from_hf_file(&path.join("config.json"))?;
            let tokenizer = tokenizer::from_hf_dir(path)?;
            let weights = SafetensorsSource::open_dir(path)?;
            let mut names: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| ModelError::io(path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
                .collect();
            names.sort();
            let mut h = Sha256::new();
            for n in &names {
                h.update(sha256_file_cached(n)?.as_bytes());
            }
            Ok(Self {
                config,
                tokenizer,
                weights: Box::new(weights),
                path: path.to_path_buf(),
                sha256: hex::encode(h.finalize()),
                format: "hf",
            })
        } else {
            let file = gguf::GgufFile::open(path)?;
            let origin = path.display().to_string();
            let config = LlamaConfig::from_gguf(&file, &origin)?;
            let tokenizer = tokenizer::from_gguf(&file)?;
            let mut config = config;
            if config.eos_token_ids.is_empty() {
                config.eos_token_ids.extend(tokenizer.eos_id);
            }
            let sha256 = sha256_file_cached(path)?;
            let weights = GgufSource::new(file, path, &config);
            Ok(Self {
                config,
                tokenizer,
                weights: Box::new(weights),
                path: path.to_path_buf(),
                sha256,
                format: "gguf",
            })
        }
    }

    /// Builds the burn model on `device`.
    pub fn build(&self, device: &burn::tensor::Device) -> Result<(Llama, LoadReport), ModelError> {
        load_llama(&self.config, self.weights.as_ref(), device)
    }
}
