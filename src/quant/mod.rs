//! INT8 inference: symmetric per-output-channel weight quantization and the hand-written
//! kernels that run it (burn has no integer kernels on CPU). Activations are quantized on
//! the fly per block of [`BLOCK`] values (as llama.cpp's Q8_0 does), products accumulate in
//! i32 and are scaled in f32. The AVX2 path is chosen at run time; a portable scalar path
//! computes the same result elsewhere.

use rayon::prelude::*;

use crate::model::{Llama, Projection};

/// Activation quantization block length.
pub const BLOCK: usize = 32;
/// Largest magnitude of a symmetric INT8 value.
const QMAX: f32 = 127.0;
/// Output rows per parallel work item.
const ROWS_PER_TASK: usize = 32;

/// An INT8 linear layer: `y = x · Wᵀ` with `W` `[out, in]` stored as i8 plus one f32 scale per
/// output row.
#[derive(Debug, Clone)]
pub struct Int8Linear {
    in_features: usize,
    out_features: usize,
    /// Row-major `[out, in_padded]` (rows padded with zeros to a multiple of [`BLOCK`]).
    weights: Vec<i8>,
    /// Per output row.
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
    in_padded: usize,
}

/// Quantizes one row symmetrically; returns its scale.
fn quantize_row(row: &[f32], out: &mut [i8]) -> f32 {
    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { max / QMAX } else { 1.0 };
    let inv = 1.0 / scale;
    for (o, &v) in out.iter_mut().zip(row) {
        *o = (v * inv).round().clamp(-QMAX, QMAX) as i8;
    }
    scale
}

impl Int8Linear {
    /// Quantizes an f32 weight given row-major as `[out, in]`.
    pub fn from_rows(
        weight: &[f32],
        out_features: usize,
        in_features: usize,
        bias: Option<Vec<f32>>,
    ) -> Self {
        assert_eq!(
            weight.len(),
            out_features * in_features,
            "weight length must be out × in"
        );
        let in_padded = in_features.div_ceil(BLOCK) * BLOCK;
        let mut weights = vec![0i8; out_features * in_padded];
        let mut scales = vec![0.0f32; out_features];
        weights
            .par_chunks_mut(in_padded)
            .zip(scales.par_iter_mut())
            .enumerate()
            .for_each(|(r, (dst, s))| {
                *s = quantize_row(
                    &weight[r * in_features..(r + 1) * in_features],
                    &mut dst[..in_features],
                );
            });
        Self {
            in_features,
            out_features,
            weights,
            scales,
            bias,
            in_padded,
        }
    }

    /// Rebuilds a layer from stored INT8 rows (`[out, in]`, unpadded) and scales.
    pub fn from_parts(
        q: &[i8],
        scales: Vec<f32>,
        out_features: usize,
        in_features: usize,
        bias: Option<Vec<f32>>,
    ) -> Self {
        let in_padded = in_features.div_ceil(BLOCK) * BLOCK;
        let mut weights = vec![0i8; out_features * in_padded];
        for r in 0..out_features {
            weights[r * in_padded..r * in_padded + in_features]
                .copy_from_slice(&q[r * in_features..(r + 1) * in_features]);
        }
        Self {
            in_features,
            out_features,
            weights,
            scales,
            bias,
            in_padded,
        }
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Per-row scales.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Bias, if any.
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    /// The i8 weights row-major `[out, in]` without padding.
    pub fn rows_unpadded(&self) -> Vec<i8> {
        let mut out = Vec::with_capacity(self.out_features * self.in_features);
        for r in 0..self.out_features {
            out.extend_from_slice(
                &self.weights[r * self.in_padded..r * self.in_padded + self.in_features],
            );
        }
        out
    }

    /// Dequantized weight row-major `[out, in]`.
    pub fn dequantized_rows(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.out_features * self.in_features);
        for r in 0..self.out_features {
            let s = self.scales[r];
            out.extend(
                self.weights[r * self.in_padded..r * self.in_padded + self.in_features]
                    .iter()
                    .map(|&q| q as f32 * s),
            );
        }
        out
    }

    /// Bytes of weight storage (i8 values plus scales).
    pub fn storage_bytes(&self) -> usize {
        self.out_features * self.in_features + self.out_features * 4
    }

    /// `input` is row-major `[rows, in]`; returns `[rows, out]`.
    pub fn forward(&self, input: &[f32], rows: usize) -> Vec<f32> {
        let blocks = self.in_padded / BLOCK;
        let mut xq = vec![0i8; rows * self.in_padded];
        let mut xs = vec![0.0f32; rows * blocks];
        for r in 0..rows {
            let row = &input[r * self.in_features..(r + 1) * self.in_features];
            for b in 0..blocks {
                let lo = b * BLOCK;
                let hi = (lo + BLOCK).min(self.in_features);
                let dst = &mut xq[r * self.in_padded + lo..r * self.in_padded + lo + BLOCK];
                xs[r * blocks + b] = if lo < hi {
                    quantize_row(&row[lo..hi], &mut dst[..hi - lo])
                } else {
                    0.0
                };
            }
        }
        let mut out = vec![0.0f32; rows * self.out_features];
        let kernel = Kernel::detect();
        // Work is split over output rows; each task writes a strided set of outputs.
        let chunks: Vec<(usize, Vec<f32>)> = (0..self.out_features.div_ceil(ROWS_PER_TASK))
            .into_par_iter()
            .map(|t| {
                let o_lo = t * ROWS_PER_TASK;
                let o_hi = (o_lo + ROWS_PER_TASK).min(self.out_features);
                let mut local = vec![0.0f32; rows * (o_hi - o_lo)];
                for o in o_lo..o_hi {
                    let w = &self.weights[o * self.in_padded..(o + 1) * self.in_padded];
                    for r in 0..rows {
                        let x = &xq[r * self.in_padded..(r + 1) * self.in_padded];
                        let s = &xs[r * blocks..(r + 1) * blocks];
                        let mut acc = kernel.dot(w, x, s) * self.scales[o];
                        if let Some(b) = &self.bias {
                            acc += b[o];
                        }
                        local[r * (o_hi - o_lo) + (o - o_lo)] = acc;
                    }
                }
                (o_lo, local)
            })
            .collect();
        for (o_lo, local) in chunks {
            let width = local.len() / rows.max(1);
            for r in 0..rows {
                out[r * self.out_features + o_lo..r * self.out_features + o_lo + width]
                    .copy_from_slice(&local[r * width..(r + 1) * width]);
            }
        }
        out
    }
}

/// Which dot-product implementation this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Scalar,
    Avx2,
}

impl Kernel {
    /// Picks the fastest kernel the CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Kernel::Avx2;
            }
        }
        Kernel::Scalar
    }

    /// Σ_b scale_b · Σ_{i in block b} w_i · x_i over padded rows.
    pub fn dot(self, w: &[i8], x: &[i8], scales: &[f32]) -> f32 {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx2 is only selected after runtime detection of avx2 and fma.
            Kernel::Avx2 => unsafe { dot_avx2(w, x, scales) },
            _ => dot_scalar(w, x, scales),
        }
    }
}

/// Portable reference kernel.
pub fn dot_scalar(w: &[i8], x: &[i8], scales: &[f32]) -> f32 {
    let mut total = 0.0f32;
    for (b, s) in scales.iter().enumerate() {
        let lo = b * BLOCK;
        let mut acc = 0i32;
        for i in lo..lo + BLOCK {
            acc += i32::from(w[i]) * i32::from(x[i]);
        }
        total += acc as f32 * s;
    }
    total
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(w: &[i8], x: &[i8], scales: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for (b, &s) in scales.iter().enumerate() {
        // SAFETY: both rows hold scales.len() * BLOCK bytes (padded), BLOCK == 32.
        let wv = unsafe { _mm256_loadu_si256(w.as_ptr().add(b * BLOCK) as *const __m256i) };
        let xv = unsafe { _mm256_loadu_si256(x.as_ptr().add(b * BLOCK) as *const __m256i) };
        let ax = _mm256_sign_epi8(xv, xv);
        let sw = _mm256_sign_epi8(wv, xv);
        let p16 = _mm256_maddubs_epi16(ax, sw);
        let p32 = _mm256_madd_epi16(p16, ones);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), _mm256_set1_ps(s), acc);
    }
    let hi = _mm256_extractf128_ps(acc, 1);
    let lo = _mm256_castps256_ps128(acc);
    let sum = _mm_add_ps(hi, lo);
    let sum = _mm_hadd_ps(sum, sum);
    let sum = _mm_hadd_ps(sum, sum);
    _mm_cvtss_f32(sum)
}

/// Host copy of a dense projection's weight as row-major `[out, in]` plus bias.
pub fn dense_rows(p: &Projection) -> Option<(Vec<f32>, usize, usize, Option<Vec<f32>>)> {
    let d = p.effective_dense()?;
    let [inp, out] = d.weight.dims();
    let w = crate::backend::to_vec(d.weight);
    let mut rows = vec![0.0f32; w.len()];
    for i in 0..inp {
        for o in 0..out {
            rows[o * inp + i] = w[i * out + o];
        }
    }
    let bias = d.bias.map(crate::backend::to_vec);
    Some((rows, out, inp, bias))
}

/// Summary of a quantization.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuantReport {
    pub f32_linear_bytes: usize,
    pub int8_linear_bytes: usize,
    pub layers_quantized: usize,
}

/// Replaces every projection of `model` (and the output head) by its INT8 version. LoRA
/// projections are merged first.
pub fn quantize_model(model: &Llama) -> (Llama, QuantReport) {
    let mut q = model.clone();
    let mut report = QuantReport {
        f32_linear_bytes: 0,
        int8_linear_bytes: 0,
        layers_quantized: 0,
    };
    let mut convert = |p: &mut Projection| {
        if let Some((rows, out, inp, bias)) = dense_rows(p) {
            report.f32_linear_bytes += rows.len() * 4;
            let l = Int8Linear::from_rows(&rows, out, inp, bias);
            report.int8_linear_bytes += l.storage_bytes();
            report.layers_quantized += 1;
            *p = Projection::Int8(std::sync::Arc::new(l));
        }
    };
    for layer in &mut q.layers {
        for name in crate::model::llama::PROJECTION_NAMES {
            if let Some(p) = layer.projection_mut(name) {
                convert(p);
            }
        }
    }
    convert(&mut q.lm_head);
    (q, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 8) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn int8_matches_f32_within_bound() {
        let (out, inp, rows) = (67, 150, 3);
        let w = pseudo(out * inp, 1);
        let x = pseudo(rows * inp, 2);
        let layer = Int8Linear::from_rows(&w, out, inp, None);
        let y = layer.forward(&x, rows);
        let mut max_err = 0.0f32;
        let mut max_ref = 0.0f32;
        for r in 0..rows {
            for o in 0..out {
                let exact: f32 = (0..inp).map(|i| w[o * inp + i] * x[r * inp + i]).sum();
                max_err = max_err.max((exact - y[r * out + o]).abs());
                max_ref = max_ref.max(exact.abs());
            }
        }
        assert!(
            max_err / max_ref < 0.02,
            "relative error {}",
            max_err / max_ref
        );
    }

    #[test]
    fn simd_equals_scalar() {
        let w: Vec<i8> = (0..256).map(|i| ((i * 37) % 255) as i8).collect();
        let x: Vec<i8> = (0..256)
            .map(|i| ((i * 91 + 7) % 255) as i8)
            .map(|v| v.max(-127))
            .collect();
        let w: Vec<i8> = w.into_iter().map(|v| v.max(-127)).collect();
        let s: Vec<f32> = (0..8).map(|i| 0.01 * (i + 1) as f32).collect();
        let a = dot_scalar(&w, &x, &s);
        let b = Kernel::detect().dot(&w, &x, &s);
        assert!((a - b).abs() <= 1e-3 * a.abs().max(1.0), "{a} vs {b}");
    }
}
