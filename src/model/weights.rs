//! Weight import: one [`WeightSource`] per file format (GGUF, Hugging Face safetensors,
//! sharded or not), read one tensor at a time under Hugging Face names, and the builder that
//! turns a source into a [`Llama`] on a burn device.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use memmap2::Mmap;

use super::ModelError;
use super::config::LlamaConfig;
use super::gguf::GgufFile;
use super::linear::{Dense, Projection};
use super::llama::{Block, Llama};

/// A tensor in host memory: row-major f32 with its shape (HF/PyTorch order).
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Where weights come from, addressed by Hugging Face parameter names.
pub trait WeightSource {
    /// The file or folder, for error messages.
    fn origin(&self) -> String;
    /// Whether a tensor of that HF name exists.
    fn contains(&self, name: &str) -> bool;
    /// Loads one tensor as f32, casting or dequantizing as needed.
    fn load(&self, name: &str) -> Result<HostTensor, ModelError>;
    /// Loads an INT8 tensor (raw i8 values and shape), for sources that store them.
    fn load_i8(&self, name: &str) -> Result<(Vec<i8>, Vec<usize>), ModelError> {
        Err(ModelError::Dtype {
            origin: self.origin(),
            tensor: name.to_string(),
            why: "this source holds no INT8 tensors".into(),
        })
    }
}

/// Declarative map from llama.cpp GGUF names to Hugging Face names.
const GGUF_NAME_MAP: &[(&str, &str)] = &[
    ("attn_norm.weight", "input_layernorm.weight"),
    ("attn_q.weight", "self_attn.q_proj.weight"),
    ("attn_q.bias", "self_attn.q_proj.bias"),
    ("attn_k.weight", "self_attn.k_proj.weight"),
    ("attn_k.bias", "self_attn.k_proj.bias"),
    ("attn_v.weight", "self_attn.v_proj.weight"),
    ("attn_v.bias", "self_attn.v_proj.bias"),
    ("attn_output.weight", "self_attn.o_proj.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ("ffn_gate.weight", "mlp.gate_proj.weight"),
    ("ffn_up.weight", "mlp.up_proj.weight"),
    ("ffn_down.weight", "mlp.down_proj.weight"),
];

/// Translates a Hugging Face parameter name to its GGUF name.
pub fn hf_to_gguf_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    GGUF_NAME_MAP
        .iter()
        .find(|(_, h)| *h == suffix)
        .map(|(g, _)| format!("blk.{layer}.{g}"))
}

/// Weights read from a GGUF file, dequantized on load, with llama.cpp's row permutation of
/// the Q and K projections undone so the layout equals Hugging Face's.
pub struct GgufSource {
    pub file: GgufFile,
    path: PathBuf,
    num_heads: usize,
    num_kv_heads: usize,
}

impl GgufSource {
    /// Wraps an opened GGUF file; head counts are needed to undo the Q/K permutation.
    pub fn new(file: GgufFile, path: &Path, config: &LlamaConfig) -> Self {
        Self {
            file,
            path: path.to_path_buf(),
            num_heads: config.num_heads,
            num_kv_heads: config.num_kv_heads,
        }
    }
}

/// Undoes `convert_hf_to_gguf.py`'s permutation of Q/K rows (and biases) for `heads` heads.
pub fn unpermute_rows(t: &mut HostTensor, heads: usize) {
    let rows = t.shape[0];
    let cols = if t.shape.len() > 1 { t.shape[1] } else { 1 };
    if heads == 0 || rows % heads != 0 || (rows / heads) % 2 != 0 {
        return;
    }
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0.0f32; t.data.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let src = h * head_dim + i * 2 + j;
                let dst = h * head_dim + j * half + i;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&t.data[src * cols..(src + 1) * cols]);
            }
        }
    }
    t.data = out;
}

impl WeightSource for GgufSource {
    fn origin(&self) -> String {
        self.path.display().to_string()
    }

    fn contains(&self, name: &str) -> bool {
        hf_to_gguf_name(name).is_some_and(|g| self.file.tensor(&g).is_some())
    }

    fn load(&self, name: &str) -> Result<HostTensor, ModelError> {
        let gguf_name = hf_to_gguf_name(name).ok_or_else(|| ModelError::MissingTensor {
            origin: self.origin(),
            tensor: name.to_string(),
        })?;
        let info = self
            .file
            .tensor(&gguf_name)
            .ok_or_else(|| ModelError::MissingTensor {
                origin: self.origin(),
                tensor: format!("{gguf_name} (HF {name})"),
            })?;
        let shape: Vec<usize> = info.dims.iter().rev().map(|&d| d as usize).collect();
        let data = self.file.dequantize(&gguf_name)?;
        let mut t = HostTensor { shape, data };
        if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
            unpermute_rows(&mut t, self.num_heads);
        } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
            unpermute_rows(&mut t, self.num_kv_heads);
        }
        Ok(t)
    }
}

/// One safetensors file, memory-mapped, with its parsed header.
struct MappedSafetensors {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    tensors: BTreeMap<String, (safetensors::Dtype, Vec<usize>, (usize, usize))>,
}

/// Weights read from a Hugging Face folder: `model.safetensors` or shards listed in
/// `model.safetensors.index.json`; f32, f16 and bf16 are cast to f32 on load.
pub struct SafetensorsSource {
    dir: PathBuf,
    files: Vec<MappedSafetensors>,
}

impl SafetensorsSource {
    /// Opens every safetensors file of a Hugging Face model folder.
    pub fn open_dir(dir: &Path) -> Result<Self, ModelError> {
        let index = dir.join("model.safetensors.index.json");
        let mut paths: Vec<PathBuf> = Vec::new();
        if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| ModelError::Json {
                    path: index.display().to_string(),
                    why: e.to_string(),
                })?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| ModelError::Json {
                    path: index.display().to_string(),
                    why: "key `weight_map` missing or not an object".into(),
                })?;
            let mut names: Vec<String> = map
                .values()
                .filter_map(|f| f.as_str().map(String::from))
                .collect();
            names.sort();
            names.dedup();
            paths.extend(names.into_iter().map(|n| dir.join(n)));
        } else {
            let single = dir.join("model.safetensors");
            if !single.exists() {
                return Err(ModelError::MissingFile {
                    path: single.display().to_string(),
                    why: "a Hugging Face model folder needs model.safetensors or model.safetensors.index.json".into(),
                });
            }
            paths.push(single);
        }
        let files = paths
            .iter()
            .map(|p| Self::map_file(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
        })
    }

    fn map_file(path: &Path) -> Result<MappedSafetensors, ModelError> {
        let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
        // SAFETY: the file is opened read-only and not modified while mapped by this process.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
        let corrupt = |why: String| ModelError::Corrupt {
            path: path.display().to_string(),
            why,
        };
        let (header_len, meta) = safetensors::SafeTensors::read_metadata(&mmap)
            .map_err(|e| corrupt(format!("bad safetensors header: {e}")))?;
        let data_start = 8 + header_len;
        let data_len = mmap.len().saturating_sub(data_start);
        let mut tensors = BTreeMap::new();
        for (name, info) in meta.tensors() {
            let (start, end) = info.data_offsets;
            if end > data_len || start > end {
                return Err(corrupt(format!(
                    "tensor {name}: data range {start}..{end} lies outside the {data_len} data bytes (truncated file?)"
                )));
            }
            tensors.insert(
                name.clone(),
                (info.dtype, info.shape.clone(), info.data_offsets),
            );
        }
        Ok(MappedSafetensors {
            path: path.to_path_buf(),
            mmap,
            data_start,
            tensors,
        })
    }
}

impl WeightSource for SafetensorsSource {
    fn origin(&self) -> String {
        self.dir.display().to_string()
    }

    fn load_i8(&self, name: &str) -> Result<(Vec<i8>, Vec<usize>), ModelError> {
        let (file, (dtype, shape, (start, end))) =
            self.find(name).ok_or_else(|| ModelError::MissingTensor {
                origin: self.origin(),
                tensor: name.to_string(),
            })?;
        if dtype != safetensors::Dtype::I8 {
            return Err(ModelError::Dtype {
                origin: file.path.display().to_string(),
                tensor: name.to_string(),
                why: format!("expected I8 (it has a `_scale` companion), got {dtype:?}"),
            });
        }
        let bytes = &file.mmap[file.data_start + start..file.data_start + end];
        if bytes.len() != shape.iter().product::<usize>() {
            return Err(ModelError::Corrupt {
                path: file.path.display().to_string(),
                why: format!(
                    "tensor {name}: {} bytes for shape {shape:?} of I8",
                    bytes.len()
                ),
            });
        }
        Ok((bytes.iter().map(|&b| b as i8).collect(), shape))
    }

    fn contains(&self, name: &str) -> bool {
        self.files.iter().any(|f| f.tensors.contains_key(name))
    }

    fn load(&self, name: &str) -> Result<HostTensor, ModelError> {
        let (file, (dtype, shape, (start, end))) = self
            .files
            .iter()
            .find_map(|f| f.tensors.get(name).map(|t| (f, t.clone())))
            .ok_or_else(|| ModelError::MissingTensor {
                origin: self.origin(),
                tensor: name.to_string(),
            })?;
        let bytes = &file.mmap[file.data_start + start..file.data_start + end];
        let count: usize = shape.iter().product();
        if dtype == safetensors::Dtype::I8 {
            return Err(ModelError::Dtype {
                origin: file.path.display().to_string(),
                tensor: name.to_string(),
                why: "is INT8; it needs its `_scale` companion (load through the INT8 path)".into(),
            });
        }
        let width = match dtype {
            safetensors::Dtype::F32 => 4,
            safetensors::Dtype::F16 | safetensors::Dtype::BF16 => 2,
            other => {
                return Err(ModelError::Dtype {
                    origin: file.path.display().to_string(),
                    tensor: name.to_string(),
                    why: format!("unsupported dtype {other:?} (supported: F32, F16, BF16)"),
                });
            }
        };
        if bytes.len() != count * width {
            return Err(ModelError::Corrupt {
                path: file.path.display().to_string(),
                why: format!(
                    "tensor {name}: {} bytes for shape {shape:?} of {dtype:?}",
                    bytes.len()
                ),
            });
        }
        let data: Vec<f32> = match dtype {
            safetensors::Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            safetensors::Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        };
        Ok(HostTensor { shape, data })
    }
}

impl SafetensorsSource {
    fn find(
        &self,
        name: &str,
    ) -> Option<(
        &MappedSafetensors,
        (safetensors::Dtype, Vec<usize>, (usize, usize)),
    )> {
        self.files
            .iter()
            .find_map(|f| f.tensors.get(name).map(|t| (f, t.clone())))
    }
}

/// What loading noticed that the caller should tell the user.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub warnings: Vec<String>,
    pub tensors_loaded: usize,
}

fn expect_shape(
    source: &dyn WeightSource,
    name: &str,
    t: &HostTensor,
    want: &[usize],
) -> Result<(), ModelError> {
    if t.shape != want {
        return Err(ModelError::Shape {
            origin: source.origin(),
            tensor: name.to_string(),
            expected: want.to_vec(),
            got: t.shape.clone(),
        });
    }
    Ok(())
}

fn to_tensor1(t: HostTensor, device: &Device) -> Tensor<1> {
    let n = t.data.len();
    Tensor::from_data(TensorData::new(t.data, [n]), device)
}

/// Rows of the transposed matrix handled per parallel task, and the tile edge within a task.
const TRANSPOSE_TASK_ROWS: usize = 64;
const TRANSPOSE_TILE: usize = 32;

/// Transposes a row-major `[rows, cols]` matrix into `[cols, rows]`, tiled and in parallel.
fn transpose_parallel(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut t = vec![0.0f32; data.len()];
    t.par_chunks_mut(TRANSPOSE_TASK_ROWS * rows)
        .enumerate()
        .for_each(|(task, chunk)| {
            let c0 = task * TRANSPOSE_TASK_ROWS;
            let c1 = (c0 + TRANSPOSE_TASK_ROWS).min(cols);
            for r0 in (0..rows).step_by(TRANSPOSE_TILE) {
                let r1 = (r0 + TRANSPOSE_TILE).min(rows);
                for c in c0..c1 {
                    let dst = &mut chunk[(c - c0) * rows..(c - c0 + 1) * rows];
                    for r in r0..r1 {
                        dst[r] = data[r * cols + c];
                    }
                }
            }
        });
    t
}

/// Builds a dense projection from an HF `[out, in]` weight, transposing to `[in, out]` on the host.
fn dense_from_hf(weight: &HostTensor, bias: Option<HostTensor>, device: &Device) -> Dense {
    let (out, inp) = (weight.shape[0], weight.shape[1]);
    let t = transpose_parallel(&weight.data, out, inp);
    Dense {
        weight: Tensor::from_data(TensorData::new(t, [inp, out]), device),
        bias: bias.map(|b| to_tensor1(b, device)),
    }
}

/// Loads a Llama-family model from `source` onto `device`, checking every shape.
pub fn load_llama(
    config: &LlamaConfig,
    source: &dyn WeightSource,
    device: &Device,
) -> Result<(Llama, LoadReport), ModelError> {
    let mut report = LoadReport::default();
    let h = config.hidden_size;
    let qd = config.num_heads * config.head_dim;
    let kvd = config.num_kv_heads * config.head_dim;
    let ff = config.intermediate_size;
    let mut count = 0usize;
    let mut get = |name: &str, shape: &[usize]| -> Result<HostTensor, ModelError> {
        let t = source.load(name)?;
        expect_shape(source, name, &t, shape)?;
        Ok(t)
    };
    // A projection is INT8 when its weight has a `weight_scale` companion.
    let mut proj = |base: &str,
                    out: usize,
                    inp: usize,
                    bias: bool,
                    get: &mut dyn FnMut(&str, &[usize]) -> Result<HostTensor, ModelError>|
     -> Result<Projection, ModelError> {
        count += 1;
        let b = if bias {
            Some(get(&format!("{base}.bias"), &[out])?)
        } else {
            None
        };
        let scale_name = format!("{base}.weight{}", crate::export::SCALE_SUFFIX);
        if source.contains(&scale_name) {
            let (q, shape) = source.load_i8(&format!("{base}.weight"))?;
            if shape != [out, inp] {
                return Err(ModelError::Shape {
                    origin: source.origin(),
                    tensor: format!("{base}.weight"),
                    expected: vec![out, inp],
                    got: shape,
                });
            }
            let scales = get(&scale_name, &[out])?.data;
            let layer =
                crate::quant::Int8Linear::from_parts(&q, scales, out, inp, b.map(|b| b.data));
            return Ok(Projection::Int8(std::sync::Arc::new(layer)));
        }
        let w = get(&format!("{base}.weight"), &[out, inp])?;
        Ok(Projection::Dense(dense_from_hf(&w, b, device)))
    };
    let embed_host = get("model.embed_tokens.weight", &[config.vocab_size, h])?;
    let mut layers = Vec::with_capacity(config.num_layers);
    for i in 0..config.num_layers {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        let bias = config.attention_bias;
        let q = proj(&p("self_attn.q_proj"), qd, h, bias, &mut get)?;
        let k = proj(&p("self_attn.k_proj"), kvd, h, bias, &mut get)?;
        let v = proj(&p("self_attn.v_proj"), kvd, h, bias, &mut get)?;
        let o = proj(&p("self_attn.o_proj"), h, qd, false, &mut get)?;
        let gate = proj(&p("mlp.gate_proj"), ff, h, false, &mut get)?;
        let up = proj(&p("mlp.up_proj"), ff, h, false, &mut get)?;
        let down = proj(&p("mlp.down_proj"), h, ff, false, &mut get)?;
        let attn_norm = to_tensor1(get(&p("input_layernorm.weight"), &[h])?, device);
        let mlp_norm = to_tensor1(get(&p("post_attention_layernorm.weight"), &[h])?, device);
        layers.push(Block {
            attn_norm,
            q,
            k,
            v,
            o,
            mlp_norm,
            gate,
            up,
            down,
        });
    }
    let final_norm = to_tensor1(get("model.norm.weight", &[h])?, device);
    let has_head = source.contains("lm_head.weight");
    let lm_head = if has_head
        && source.contains(&format!("lm_head.weight{}", crate::export::SCALE_SUFFIX))
    {
        proj("lm_head", config.vocab_size, h, false, &mut get)?
    } else if has_head {
        let head = get("lm_head.weight", &[config.vocab_size, h])?;
        if config.tie_word_embeddings && head.data == embed_host.data {
            Projection::Dense(dense_from_hf(&embed_host, None, device))
        } else {
            if config.tie_word_embeddings {
                report.warnings.push(format!(
                    "{}: config says tie_word_embeddings but lm_head.weight differs from model.embed_tokens.weight; using the real lm_head",
                    source.origin()
                ));
            }
            Projection::Dense(dense_from_hf(&head, None, device))
        }
    } else if config.tie_word_embeddings {
        Projection::Dense(dense_from_hf(&embed_host, None, device))
    } else {
        return Err(ModelError::MissingTensor {
            origin: source.origin(),
            tensor: "lm_head.weight (config has tie_word_embeddings = false)".into(),
        });
    };
    report.tensors_loaded = count;
    let embed = Tensor::from_data(
        TensorData::new(embed_host.data, [config.vocab_size, h]),
        device,
    );
    Ok((
        Llama {
            config: config.clone(),
            embed,
            layers,
            final_norm,
            lm_head,
            device: device.clone(),
        },
        report,
    ))
}
