//! LoRA fine-tuning on burn's autodiff: masked next-token cross-entropy on answer tokens,
//! AdamW with warm-up then cosine decay, global gradient-norm clipping, periodic validation
//! and checkpoints. Reports through a [`TrainSink`]; never prints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Serialize;

use crate::data::tokenize::{Batch, Example, make_batch};
use crate::model::{Llama, Projection};

/// Optimisation settings (from the recipe's `[training]`).
#[derive(Debug, Clone, Serialize)]
pub struct TrainSettings {
    pub max_steps: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub grad_clip: f64,
    pub eval_every: usize,
    pub checkpoint_every: usize,
    pub seed: u64,
}

/// AdamW constants (PyTorch defaults).
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// What training reports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    Step {
        step: usize,
        loss: f64,
        lr: f64,
        grad_norm: f64,
        tokens: usize,
        seconds: f64,
    },
    Validation {
        step: usize,
        loss: f64,
    },
}

/// Receives training events; may ask for a checkpoint to be written.
pub trait TrainSink {
    fn event(&mut self, event: &TrainEvent);
    /// Called every `checkpoint_every` steps and at the end with the model being trained.
    fn checkpoint(&mut self, step: usize, model: &Llama);
}

/// Summary of a training run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub steps: usize,
    pub first_loss: f64,
    pub final_loss: f64,
    pub val_loss_before: f64,
    pub val_loss_after: f64,
    pub trained_tokens: usize,
    pub seconds: f64,
    pub cancelled: bool,
}

/// Learning rate at `step` (0-based): linear warm-up, then cosine decay to 10 % of peak.
pub fn lr_at(s: &TrainSettings, step: usize) -> f64 {
    if step < s.warmup_steps {
        return s.learning_rate * (step + 1) as f64 / s.warmup_steps as f64;
    }
    let span = (s.max_steps - s.warmup_steps).max(1) as f64;
    let progress = ((step - s.warmup_steps) as f64 / span).min(1.0);
    let floor = 0.1 * s.learning_rate;
    floor + 0.5 * (s.learning_rate - floor) * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Mean cross-entropy over masked positions, plus the count of scored tokens. Only the
/// scored positions go through the output head (the prompt's logits are never built).
pub fn masked_loss(model: &Llama, batch: &Batch, device: &Device) -> (Tensor<1>, usize) {
    let tokens = model.tokens(&batch.ids, batch.batch);
    let hidden = model.forward_hidden(tokens, None);
    let [b, s, h] = hidden.dims();
    let positions: Vec<i64> = batch
        .mask
        .iter()
        .enumerate()
        .filter(|(_, m)| **m > 0.0)
        .map(|(i, _)| i as i64)
        .collect();
    let n = positions.len().max(1);
    let targets: Vec<i64> = positions
        .iter()
        .map(|&i| i64::from(batch.targets[i as usize]))
        .collect();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(positions, [n]), device);
    let picked = hidden.reshape([b * s, h]).select(0, idx);
    let logits = model
        .lm_head
        .forward(picked.unsqueeze_dim(0))
        .reshape([n, model.config.vocab_size]);
    let logp = log_softmax(logits, 1);
    let tgt = Tensor::<2, Int>::from_data(TensorData::new(targets, [n, 1]), device);
    let nll = logp.gather(1, tgt).neg();
    (nll.mean().reshape([1]), n)
}

/// Mean loss over `examples` without gradients (batched).
pub fn evaluate_loss(model: &Llama, examples: &[Example], batch_size: usize, pad: u32) -> f64 {
    let mut total = 0.0;
    let mut count = 0usize;
    for chunk in examples.chunks(batch_size.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = make_batch(&refs, pad);
        let (loss, n) = masked_loss(model, &batch, &model.device);
        let l = crate::backend::to_vec(loss.detach())[0] as f64;
        total += l * n as f64;
        count += n;
    }
    if count == 0 {
        f64::NAN
    } else {
        total / count as f64
    }
}

/// AdamW moments of one parameter.
struct Moments {
    m: Tensor<2>,
    v: Tensor<2>,
}

fn lora_params(model: &mut Llama) -> Vec<&mut Tensor<2>> {
    let mut out = Vec::new();
    for layer in &mut model.layers {
        for (_, p) in layer.projections_mut() {
            if let Projection::Lora(l) = p {
                out.push(&mut l.a);
                out.push(&mut l.b);
            }
        }
    }
    out
}

/// Trains the LoRA adapters of `model` (built on an autodiff device) in place.
pub fn train(
    model: &mut Llama,
    train_set: &[Example],
    val_set: &[Example],
    settings: &TrainSettings,
    pad: u32,
    sink: &mut dyn TrainSink,
    cancel: &AtomicBool,
) -> TrainSummary {
    let start = Instant::now();
    let device = model.device.clone();
    crate::lora::set_training(model, false);
    let val_loss_before = evaluate_loss(model, val_set, settings.batch_size, pad);
    sink.event(&TrainEvent::Validation {
        step: 0,
        loss: val_loss_before,
    });
    crate::lora::set_training(model, true);
    let mut moments: Vec<Option<Moments>> = Vec::new();
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    let mut cursor = order.len();
    let mut rng = settings
        .seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1);
    let mut first_loss = f64::NAN;
    let mut final_loss = f64::NAN;
    let mut trained_tokens = 0usize;
    let mut steps_done = 0usize;
    let mut cancelled = false;
    for step in 0..settings.max_steps {
        if cancel.load(Ordering::Relaxed) {
            cancelled = true;
            break;
        }
        let t0 = Instant::now();
        let mut picked = Vec::with_capacity(settings.batch_size);
        while picked.len() < settings.batch_size {
            if cursor >= order.len() {
                for i in (1..order.len()).rev() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    order.swap(i, (rng % (i as u64 + 1)) as usize);
                }
                cursor = 0;
            }
            picked.push(&train_set[order[cursor]]);
            cursor += 1;
        }
        let batch = make_batch(&picked, pad);
        let (loss, n) = masked_loss(model, &batch, &device);
        let loss_value = crate::backend::to_vec(loss.clone().detach())[0] as f64;
        let grads = loss.backward();
        let lr = lr_at(settings, step);
        let params = lora_params(model);
        if moments.is_empty() {
            moments = params.iter().map(|_| None).collect();
        }
        let gs: Vec<Option<Tensor<2>>> = params.iter().map(|p| p.grad(&grads)).collect();
        let sq: f64 = gs
            .iter()
            .flatten()
            .map(|g| crate::backend::to_vec(g.clone().powi_scalar(2).sum())[0] as f64)
            .sum();
        let grad_norm = sq.sqrt();
        let clip = if settings.grad_clip > 0.0 && grad_norm > settings.grad_clip {
            settings.grad_clip / grad_norm
        } else {
            1.0
        };
        let t = (step + 1) as i32;
        let bc1 = 1.0 - BETA1.powi(t);
        let bc2 = 1.0 - BETA2.powi(t);
        for ((p, g), mom) in params.into_iter().zip(gs).zip(moments.iter_mut()) {
            let Some(g) = g else { continue };
            let g = g.mul_scalar(clip);
            let (m, v) = match mom.take() {
                Some(Moments { m, v }) => (
                    m.mul_scalar(BETA1) + g.clone().mul_scalar(1.0 - BETA1),
                    v.mul_scalar(BETA2) + g.powi_scalar(2).mul_scalar(1.0 - BETA2),
                ),
                None => (
                    g.clone().mul_scalar(1.0 - BETA1),
                    g.powi_scalar(2).mul_scalar(1.0 - BETA2),
                ),
            };
            let update =
                m.clone().div_scalar(bc1) / v.clone().div_scalar(bc2).sqrt().add_scalar(EPS);
            let w = p.clone().inner();
            let w = w.clone().mul_scalar(1.0 - lr * settings.weight_decay) - update.mul_scalar(lr);
            *p = Tensor::from_inner(w).require_grad();
            *mom = Some(Moments { m, v });
        }
        if step == 0 {
            first_loss = loss_value;
        }
        final_loss = loss_value;
        trained_tokens += n;
        steps_done = step + 1;
        sink.event(&TrainEvent::Step {
            step: step + 1,
            loss: loss_value,
            lr,
            grad_norm,
            tokens: n,
            seconds: t0.elapsed().as_secs_f64(),
        });
        let last = step + 1 == settings.max_steps;
        if (step + 1) % settings.eval_every == 0 && !last {
            crate::lora::set_training(model, false);
            let vl = evaluate_loss(model, val_set, settings.batch_size, pad);
            crate::lora::set_training(model, true);
            sink.event(&TrainEvent::Validation {
                step: step + 1,
                loss: vl,
            });
        }
        if (step + 1) % settings.checkpoint_every == 0 || last {
            sink.checkpoint(step + 1, model);
        }
    }
    crate::lora::set_training(model, false);
    if cancelled {
        return TrainSummary {
            steps: steps_done,
            first_loss,
            final_loss,
            val_loss_before,
            val_loss_after: f64::NAN,
            trained_tokens,
            seconds: start.elapsed().as_secs_f64(),
            cancelled,
        };
    }
    let val_loss_after = evaluate_loss(model, val_set, settings.batch_size, pad);
    sink.event(&TrainEvent::Validation {
        step: steps_done,
        loss: val_loss_after,
    });
    TrainSummary {
        steps: steps_done,
        first_loss,
        final_loss,
        val_loss_before,
        val_loss_after,
        trained_tokens,
        seconds: start.elapsed().as_secs_f64(),
        cancelled,
    }
}
