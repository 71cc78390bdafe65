//! The Llama-family decoder in burn: RMSNorm, RoPE (with Llama 3 scaling), grouped-query
//! attention (optional sliding window, optional q/k/v bias), SwiGLU MLP, tied or untied
//! head, and a KV cache for generation. Only forward passes live here; weight import is in
//! [`super::weights`], sampling in [`crate::generate`].

use burn::tensor::module::{attention, embedding};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Device, FloatDType, Int, Tensor, TensorData, activation};

use super::config::LlamaConfig;
use super::linear::Projection;

/// One decoder layer.
#[derive(Debug, Clone)]
pub struct Block {
    pub attn_norm: Tensor<1>,
    pub q: Projection,
    pub k: Projection,
    pub v: Projection,
    pub o: Projection,
    pub mlp_norm: Tensor<1>,
    pub gate: Projection,
    pub up: Projection,
    pub down: Projection,
}

/// The whole decoder.
#[derive(Debug, Clone)]
pub struct Llama {
    pub config: LlamaConfig,
    /// Token embedding, shape `[vocab, hidden]`.
    pub embed: Tensor<2>,
    pub layers: Vec<Block>,
    pub final_norm: Tensor<1>,
    /// The output head. With tied embeddings this is a dense projection whose weight is the
    /// embedding's transpose (or an INT8 copy of it after quantization).
    pub lm_head: Projection,
    pub device: Device,
}

/// Per-layer cached keys and values, each `[batch, kv_heads, seq, head_dim]`.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    len: usize,
    /// Left padding per batch row (batched generation of prompts of different lengths).
    pad_left: Vec<usize>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache for a batch whose rows are left-padded by `pads` tokens: padded positions are
    /// masked out as keys, and each row's RoPE positions start at its first real token.
    pub fn with_left_padding(pads: Vec<usize>) -> Self {
        Self {
            pad_left: pads,
            ..Self::default()
        }
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The slots of a block's projections, in PEFT `target_modules` naming.
pub const PROJECTION_NAMES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

impl Block {
    /// Mutable access to a projection by its PEFT module name.
    pub fn projection_mut(&mut self, name: &str) -> Option<&mut Projection> {
        Some(match name {
            "q_proj" => &mut self.q,
            "k_proj" => &mut self.k,
            "v_proj" => &mut self.v,
            "o_proj" => &mut self.o,
            "gate_proj" => &mut self.gate,
            "up_proj" => &mut self.up,
            "down_proj" => &mut self.down,
            _ => return None,
        })
    }

    /// All projections with their PEFT module names, mutably.
    pub fn projections_mut(&mut self) -> [(&'static str, &mut Projection); 7] {
        [
            ("q_proj", &mut self.q),
            ("k_proj", &mut self.k),
            ("v_proj", &mut self.v),
            ("o_proj", &mut self.o),
            ("gate_proj", &mut self.gate),
            ("up_proj", &mut self.up),
            ("down_proj", &mut self.down),
        ]
    }

    /// Shared access to a projection by its PEFT module name.
    pub fn projection(&self, name: &str) -> Option<&Projection> {
        Some(match name {
            "q_proj" => &self.q,
            "k_proj" => &self.k,
            "v_proj" => &self.v,
            "o_proj" => &self.o,
            "gate_proj" => &self.gate,
            "up_proj" => &self.up,
            "down_proj" => &self.down,
            _ => return None,
        })
    }

    /// The HF parameter path of a projection inside layer `i`.
    pub fn hf_path(layer: usize, name: &str) -> String {
        let group = if matches!(name, "gate_proj" | "up_proj" | "down_proj") {
            "mlp"
        } else {
            "self_attn"
        };
        format!("model.layers.{layer}.{group}.{name}")
    }
}

fn rms_norm(x: Tensor<3>, weight: &Tensor<1>, eps: f64) -> Tensor<3> {
    let hidden = weight.dims()[0];
    let inv = x
        .clone()
        .powi_scalar(2)
        .mean_dim(2)
        .add_scalar(eps)
        .sqrt()
        .recip();
    x * inv * weight.clone().reshape([1, 1, hidden])
}

fn rotate_half(x: Tensor<4>) -> Tensor<4> {
    let d = x.dims()[3];
    let half = d / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    Tensor::cat(vec![x2.neg(), x1], 3)
}

/// Inverse RoPE frequencies, with Llama 3 frequency-dependent scaling when configured.
pub fn inv_frequencies(config: &LlamaConfig) -> Vec<f64> {
    let d = config.head_dim;
    let mut inv: Vec<f64> = (0..d / 2)
        .map(|i| 1.0 / config.rope_theta.powf((2 * i) as f64 / d as f64))
        .collect();
    if let Some(s) = config.rope_scaling {
        let old = s.original_max_position_embeddings as f64;
        let low_wavelen = old / s.low_freq_factor;
        let high_wavelen = old / s.high_freq_factor;
        for f in inv.iter_mut() {
            let wavelen = 2.0 * std::f64::consts::PI / *f;
            if wavelen > low_wavelen {
                *f /= s.factor;
            } else if wavelen >= high_wavelen {
                let smooth =
                    (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                *f = (1.0 - smooth) * *f / s.factor + smooth * *f;
            }
        }
    }
    inv
}

impl Llama {
    /// cos and sin tables for columns `start..start+len`, each `[rows, 1, len, head_dim]`:
    /// one row shared by the batch, or one per row when rows are left-padded (`pads`).
    fn rope_tables(&self, start: usize, len: usize, pads: &[usize]) -> (Tensor<4>, Tensor<4>) {
        let d = self.config.head_dim;
        let inv = inv_frequencies(&self.config);
        let offsets: Vec<usize> = if pads.is_empty() {
            vec![0]
        } else {
            pads.to_vec()
        };
        let rows = offsets.len();
        let mut cos = Vec::with_capacity(rows * len * d);
        let mut sin = Vec::with_capacity(rows * len * d);
        for pad in &offsets {
            for col in start..start + len {
                let p = col.saturating_sub(*pad);
                for _half in 0..2 {
                    for f in &inv {
                        let angle = p as f64 * f;
                        cos.push(angle.cos() as f32);
                        sin.push(angle.sin() as f32);
                    }
                }
            }
        }
        let mk = |v: Vec<f32>| {
            self.match_dtype(Tensor::<4>::from_data(
                TensorData::new(v, [rows, 1, len, d]),
                &self.device,
            ))
        };
        (mk(cos), mk(sin))
    }

    /// Casts a freshly built f32 tensor to the model's float type (f64 for exact checks).
    fn match_dtype<const D: usize>(&self, t: Tensor<D>) -> Tensor<D> {
        if self.embed.dtype() == DType::F64 {
            t.cast(FloatDType::F64)
        } else {
            t
        }
    }

    /// The same model with every float weight cast to `dtype` (f64 gives exact reference
    /// computations; INT8 projections are kept as they are).
    pub fn cast(&self, dtype: FloatDType) -> Llama {
        let mut m = self.clone();
        let c1 = |t: &Tensor<1>| t.clone().cast(dtype);
        let c2 = |t: &Tensor<2>| t.clone().cast(dtype);
        let cp = |p: &mut Projection| match p {
            Projection::Dense(d) => {
                d.weight = c2(&d.weight);
                d.bias = d.bias.as_ref().map(c1);
            }
            Projection::Lora(l) => {
                l.base.weight = c2(&l.base.weight);
                l.base.bias = l.base.bias.as_ref().map(c1);
                l.a = c2(&l.a);
                l.b = c2(&l.b);
            }
            Projection::Int8(_) => {}
        };
        m.embed = c2(&m.embed);
        m.final_norm = c1(&m.final_norm);
        cp(&mut m.lm_head);
        for l in &mut m.layers {
            l.attn_norm = c1(&l.attn_norm);
            l.mlp_norm = c1(&l.mlp_norm);
            for (_, p) in l.projections_mut() {
                cp(p);
            }
        }
        m
    }

    /// Boolean mask (`true` = masked) for queries at `past..past+q_len` over keys `0..past+q_len`,
    /// or `None` when plain causal masking (or none) is exact.
    fn attention_mask(
        &self,
        batch: usize,
        past: usize,
        q_len: usize,
        pads: &[usize],
    ) -> Option<Tensor<4, Bool>> {
        let k_len = past + q_len;
        let window = self.config.sliding_window.filter(|w| *w < k_len);
        let padded = pads.iter().any(|&p| p > 0);
        if window.is_none() && !padded && (past == 0 || q_len == 1) {
            return None;
        }
        let rows: Vec<usize> = if padded { pads.to_vec() } else { vec![0] };
        let mut m = Vec::with_capacity(rows.len() * q_len * k_len);
        for &pad in &rows {
            for qi in 0..q_len {
                let qcol = past + qi;
                for kcol in 0..k_len {
                    let future = kcol > qcol;
                    let outside = window.is_some_and(|w| qcol >= w && kcol <= qcol - w);
                    // A pad query attends to itself only, so its softmax stays defined.
                    let pad_key = kcol < pad && kcol != qcol;
                    m.push(future || outside || pad_key);
                }
            }
        }
        let mask = Tensor::<4, Bool>::from_data(
            TensorData::new(m, [rows.len(), 1, q_len, k_len]),
            &self.device,
        );
        Some(mask.expand([batch, self.config.num_heads, q_len, k_len]))
    }

    fn repeat_kv(&self, x: Tensor<4>) -> Tensor<4> {
        let groups = self.config.kv_groups();
        if groups == 1 {
            return x;
        }
        let [b, kvh, s, d] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .expand([b, kvh, groups, s, d])
            .reshape([b, kvh * groups, s, d])
    }

    /// Final hidden states for `tokens` `[batch, seq]`, continuing after what `cache` holds.
    /// Returns `[batch, seq, hidden]`.
    pub fn forward_hidden(
        &self,
        tokens: Tensor<2, Int>,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let cfg = &self.config;
        let [batch, seq] = tokens.dims();
        let past = cache.as_ref().map_or(0, |c| c.len);
        if let Some(c) = cache.as_mut() {
            if c.layers.len() != cfg.num_layers {
                c.layers = (0..cfg.num_layers).map(|_| None).collect();
            }
        }
        let pads: Vec<usize> = cache
            .as_ref()
            .map(|c| c.pad_left.clone())
            .filter(|p| p.len() == batch && p.iter().any(|&x| x > 0))
            .unwrap_or_default();
        let (cos, sin) = self.rope_tables(past, seq, &pads);
        let mask = self.attention_mask(batch, past, seq, &pads);
        let causal = mask.is_none() && past == 0 && seq > 1;
        let mut h = embedding(self.embed.clone(), tokens);
        for (i, layer) in self.layers.iter().enumerate() {
            let x = rms_norm(h.clone(), &layer.attn_norm, cfg.rms_norm_eps);
            let heads = |p: &Projection, n: usize, x: Tensor<3>| {
                p.forward(x)
                    .reshape([batch, seq, n, cfg.head_dim])
                    .swap_dims(1, 2)
            };
            let q = heads(&layer.q, cfg.num_heads, x.clone());
            let k = heads(&layer.k, cfg.num_kv_heads, x.clone());
            let v = heads(&layer.v, cfg.num_kv_heads, x);
            let q = q.clone() * cos.clone() + rotate_half(q) * sin.clone();
            let k = k.clone() * cos.clone() + rotate_half(k) * sin.clone();
            let (k, v) = match cache.as_mut() {
                Some(c) => {
                    let (k, v) = match c.layers[i].take() {
                        Some((pk, pv)) => {
                            (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2))
                        }
                        None => (k, v),
                    };
                    c.layers[i] = Some((k.clone(), v.clone()));
                    (k, v)
                }
                None => (k, v),
            };
            let options = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: causal,
            };
            let att = attention(
                q,
                self.repeat_kv(k),
                self.repeat_kv(v),
                mask.clone(),
                None,
                options,
            );
            let att = att
                .swap_dims(1, 2)
                .reshape([batch, seq, cfg.num_heads * cfg.head_dim]);
            h = h + layer.o.forward(att);
            let x = rms_norm(h.clone(), &layer.mlp_norm, cfg.rms_norm_eps);
            let gated = activation::silu(layer.gate.forward(x.clone())) * layer.up.forward(x);
            h = h + layer.down.forward(gated);
        }
        if let Some(c) = cache {
            c.len += seq;
        }
        rms_norm(h, &self.final_norm, cfg.rms_norm_eps)
    }

    /// Logits `[batch, seq, vocab]` for `tokens` `[batch, seq]`.
    pub fn forward(&self, tokens: Tensor<2, Int>, cache: Option<&mut KvCache>) -> Tensor<3> {
        let h = self.forward_hidden(tokens, cache);
        self.lm_head.forward(h)
    }

    /// Logits of the last position only, `[batch, vocab]`: what generation needs.
    pub fn forward_last(&self, tokens: Tensor<2, Int>, cache: Option<&mut KvCache>) -> Tensor<2> {
        let h = self.forward_hidden(tokens, cache);
        let [b, s, _] = h.dims();
        let last = h.narrow(1, s - 1, 1);
        self.lm_head
            .forward(last)
            .reshape([b, self.lm_head.out_features()])
    }

    /// Bytes of weight storage (f32 dense, INT8 with scales); a tied head counts once.
    pub fn weight_bytes(&self) -> usize {
        let proj = |p: &Projection| match p {
            Projection::Dense(d) => d.in_features() * d.out_features() * 4,
            Projection::Lora(l) => {
                l.base.in_features() * l.base.out_features() * 4
                    + (l.a.dims()[0] * l.a.dims()[1] + l.b.dims()[0] * l.b.dims()[1]) * 4
            }
            Projection::Int8(q) => q.storage_bytes(),
        };
        let h = self.config.hidden_size;
        let mut total = self.config.vocab_size * h * 4 + h * 4;
        for l in &self.layers {
            total += 2 * h * 4;
            total += [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
                .iter()
                .map(|p| proj(p))
                .sum::<usize>();
        }
        let tied_dense =
            self.config.tie_word_embeddings && matches!(self.lm_head, Projection::Dense(_));
        if !tied_dense {
            total += proj(&self.lm_head);
        }
        total
    }

    /// A tensor of token ids `[batch, seq]` on this model's device.
    pub fn tokens(&self, ids: &[u32], batch: usize) -> Tensor<2, Int> {
        let seq = ids.len() / batch.max(1);
        let data: Vec<i64> = ids.iter().map(|&t| i64::from(t)).collect();
        Tensor::<2, Int>::from_data(TensorData::new(data, [batch, seq]), &self.device)
    }
}
