//! The one linear interface every projection of the model goes through. A LoRA wrapper
//! (training) or an INT8 kernel (inference) replaces a dense projection here, so the
//! attention and MLP code never change.

use std::sync::Arc;

use burn::tensor::{Distribution, Tensor, TensorData};

use crate::quant::Int8Linear;

/// A dense projection `y = x · W + b`, with `W` stored as `[in, out]`.
#[derive(Debug, Clone)]
pub struct Dense {
    /// Weight, shape `[in_features, out_features]` (the transpose of the HF layout).
    pub weight: Tensor<2>,
    /// Optional bias, shape `[out_features]`.
    pub bias: Option<Tensor<1>>,
}

/// A frozen dense projection plus a trainable low-rank update:
/// `y = x · W + b + scale · dropout(x) · A · B`.
#[derive(Debug, Clone)]
pub struct LoraLinear {
    /// The frozen base projection.
    pub base: Dense,
    /// Down projection, shape `[in_features, r]` (PEFT's `lora_A.weight` transposed).
    pub a: Tensor<2>,
    /// Up projection, shape `[r, out_features]` (PEFT's `lora_B.weight` transposed).
    pub b: Tensor<2>,
    /// `lora_alpha / r`.
    pub scale: f64,
    /// Dropout probability on the adapter input while training.
    pub dropout: f64,
    /// Whether dropout is active.
    pub training: bool,
}

/// Every kind of projection the model can run.
#[derive(Debug, Clone)]
pub enum Projection {
    /// Plain f32 weight through burn's matmul.
    Dense(Dense),
    /// Frozen weight with a LoRA adapter.
    Lora(LoraLinear),
    /// INT8 per-output-channel weight through the hand-written kernels.
    Int8(Arc<Int8Linear>),
}

impl Dense {
    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.dims()[1]
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, d_in] = x.dims();
        let y = x.reshape([b * s, d_in]).matmul(self.weight.clone());
        let y = match &self.bias {
            Some(bias) => y + bias.clone().unsqueeze_dim(0),
            None => y,
        };
        let d_out = self.out_features();
        y.reshape([b, s, d_out])
    }
}

impl LoraLinear {
    /// The adapter rank `r`.
    pub fn rank(&self) -> usize {
        self.a.dims()[1]
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, d_in] = x.dims();
        let base = self.base.forward(x.clone());
        let x = if self.training && self.dropout > 0.0 {
            let keep = 1.0 - self.dropout;
            let mask = Tensor::<3>::random(x.shape(), Distribution::Bernoulli(keep), &x.device());
            x * mask.div_scalar(keep)
        } else {
            x
        };
        let low = x
            .reshape([b * s, d_in])
            .matmul(self.a.clone())
            .matmul(self.b.clone())
            .mul_scalar(self.scale);
        base + low.reshape([b, s, self.base.out_features()])
    }

    /// The merged dense weight `W + scale · A · B`, shape `[in, out]`.
    pub fn merged_weight(&self) -> Tensor<2> {
        self.base.weight.clone() + self.a.clone().matmul(self.b.clone()).mul_scalar(self.scale)
    }
}

impl Projection {
    /// Applies the projection to `x` of shape `[batch, seq, in]`, giving `[batch, seq, out]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Projection::Dense(d) => d.forward(x),
            Projection::Lora(l) => l.forward(x),
            Projection::Int8(q) => {
                let [b, s, d_in] = x.dims();
                let device = x.device();
                let input = crate::backend::to_vec(x);
                debug_assert_eq!(input.len(), b * s * d_in);
                let out = q.forward(&input, b * s);
                Tensor::from_data(TensorData::new(out, [b, s, q.out_features()]), &device)
            }
        }
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        match self {
            Projection::Dense(d) => d.out_features(),
            Projection::Lora(l) => l.base.out_features(),
            Projection::Int8(q) => q.out_features(),
        }
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        match self {
            Projection::Dense(d) => d.in_features(),
            Projection::Lora(l) => l.base.in_features(),
            Projection::Int8(q) => q.in_features(),
        }
    }

    /// The dense f32 weight this projection computes (merged for LoRA), shape `[in, out]`,
    /// and its bias. `None` for INT8, whose f32 weight is no longer kept.
    pub fn effective_dense(&self) -> Option<Dense> {
        match self {
            Projection::Dense(d) => Some(d.clone()),
            Projection::Lora(l) => Some(Dense {
                weight: l.merged_weight(),
                bias: l.base.bias.clone(),
            }),
            Projection::Int8(_) => None,
        }
    }
}
