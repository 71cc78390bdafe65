//! Training maths on a tiny checkpoint: LoRA gradients against finite differences, merged
//! weights against base + adapter, PEFT files round trip, and a loss that falls.

use burn::tensor::FloatDType;
use workbench::backend::{inference_device, to_vec, training_device};
use workbench::data::tokenize::{Example, make_batch};
use workbench::lora::{self, LoraConfig};
use workbench::model::{LlamaConfig, Projection, SafetensorsSource, load_llama};
use workbench::train::masked_loss;

use crate::common::{fixtures, max_abs_diff};

fn tiny_cfg() -> (LlamaConfig, SafetensorsSource) {
    let dir = fixtures().join("logits/tiny_llama_tied");
    (
        LlamaConfig::from_hf_file(&dir.join("config.json")).unwrap(),
        SafetensorsSource::open_dir(&dir).unwrap(),
    )
}

fn lora_cfg() -> LoraConfig {
    LoraConfig {
        r: 2,
        lora_alpha: 4.0,
        lora_dropout: 0.0,
        target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
    }
}

fn example() -> Example {
    let ids: Vec<u32> = vec![3, 17, 44, 5, 90, 12, 8, 61, 33, 2];
    let trained = (0..ids.len()).map(|i| i >= 4).collect();
    Example { ids, trained }
}

#[test]
fn lora_gradient_matches_finite_differences() {
    let (cfg, src) = tiny_cfg();
    let dev = training_device();
    let (mut model, _) = load_llama(&cfg, &src, &dev).unwrap();
    workbench::backend::seed(&dev, 3);
    lora::attach(&mut model, &lora_cfg(), &dev);
    // Give B non-zero values so A receives a gradient too.
    for l in &mut model.layers {
        if let Projection::Lora(lo) = &mut l.v {
            lo.b = burn::tensor::Tensor::<2>::random(
                lo.b.shape(),
                burn::tensor::Distribution::Uniform(-0.5, 0.5),
                &dev,
            )
            .require_grad();
        }
    }
    lora::set_training(&mut model, false);
    let ex = example();
    let batch = make_batch(&[&ex], 0);
    let (loss, _) = masked_loss(&model, &batch, &dev);
    let grads = loss.backward();
    let (analytic_a, analytic_b) = match &model.layers[1].v {
        Projection::Lora(l) => (
            to_vec(l.a.grad(&grads).unwrap()),
            to_vec(l.b.grad(&grads).unwrap()),
        ),
        _ => unreachable!(),
    };
    // Central differences in f64 on the same model (no autodiff needed).
    let exact = |a_delta: Option<(usize, f64)>, b_delta: Option<(usize, f64)>| -> f64 {
        let mut m = model.clone();
        if let Projection::Lora(l) = &mut m.layers[1].v {
            let bump = |t: &burn::tensor::Tensor<2>, d: Option<(usize, f64)>| {
                let mut v = to_vec(t.clone().detach());
                if let Some((i, h)) = d {
                    v[i] += h as f32;
                }
                burn::tensor::Tensor::<2>::from_data(
                    burn::tensor::TensorData::new(v, t.dims()),
                    &dev,
                )
            };
            l.a = bump(&l.a, a_delta);
            l.b = bump(&l.b, b_delta);
        }
        let m = m.cast(FloatDType::F64);
        let (loss, _) = masked_loss(&m, &batch, &dev);
        loss.into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .unwrap()[0]
    };
    let h = 1e-3;
    for i in [0usize, 5, 17] {
        let fd_a = (exact(Some((i, h)), None) - exact(Some((i, -h)), None)) / (2.0 * h);
        let fd_b = (exact(None, Some((i, h))) - exact(None, Some((i, -h)))) / (2.0 * h);
        for (name, fd, an) in [
            ("A", fd_a, analytic_a[i] as f64),
            ("B", fd_b, analytic_b[i] as f64),
        ] {
            let tol = 2e-2 * fd.abs().max(1e-3);
            assert!(
                (fd - an).abs() <= tol,
                "d loss / d {name}[{i}]: finite difference {fd:.6e}, autodiff {an:.6e}"
            );
        }
    }
}

#[test]
fn merged_weights_equal_base_plus_adapter_and_peft_round_trips() {
    let (cfg, src) = tiny_cfg();
    let dev = inference_device();
    let (mut model, _) = load_llama(&cfg, &src, &dev).unwrap();
    let lcfg = lora_cfg();
    lora::attach(&mut model, &lcfg, &dev);
    for l in &mut model.layers {
        for (_, p) in l.projections_mut() {
            if let Projection::Lora(lo) = p {
                lo.b = burn::tensor::Tensor::<2>::random(
                    lo.b.shape(),
                    burn::tensor::Distribution::Uniform(-0.2, 0.2),
                    &dev,
                );
            }
        }
    }
    lora::set_training(&mut model, false);
    let merged = lora::merge(&model);
    let ids: Vec<u32> = (0..40).map(|i| (i * 7 % 96) as u32).collect();
    let d = workbench::eval::max_logit_diff(
        &model.cast(FloatDType::F64),
        &merged.cast(FloatDType::F64),
        &ids,
    );
    assert!(d <= 1e-4, "merged vs adapter (f64): {d}");
    let d0 = workbench::eval::max_logit_diff(&model, &lora::merge(&model), &ids);
    assert!(d0 <= 1e-3, "f32: {d0}");
    // PEFT format round trip.
    let dir = tempfile::tempdir().unwrap();
    let w = lora::extract(&model);
    lora::save_peft(dir.path(), &lcfg, &w, "tiny").unwrap();
    let (cfg2, w2) = lora::load_peft(dir.path()).unwrap();
    assert_eq!(cfg2, lcfg);
    assert_eq!(w2, w);
    let (mut again, _) = load_llama(&cfg, &src, &dev).unwrap();
    lora::attach_weights(&mut again, &cfg2, &w2, &dev).unwrap();
    let a = to_vec(model.forward(model.tokens(&ids, 1), None));
    let b = to_vec(again.forward(again.tokens(&ids, 1), None));
    assert!(
        max_abs_diff(&a, &b) == 0.0,
        "reloaded adapter changes logits"
    );
}

#[test]
fn loss_falls_when_training_on_one_batch() {
    let (cfg, src) = tiny_cfg();
    let dev = training_device();
    let (mut model, _) = load_llama(&cfg, &src, &dev).unwrap();
    workbench::backend::seed(&dev, 1);
    lora::attach(&mut model, &lora_cfg(), &dev);
    let ex = vec![example()];
    let settings = workbench::train::TrainSettings {
        max_steps: 12,
        batch_size: 1,
        learning_rate: 1e-2,
        warmup_steps: 1,
        weight_decay: 0.0,
        grad_clip: 1.0,
        eval_every: 100,
        checkpoint_every: 100,
        seed: 1,
    };
    struct Sink(Vec<f64>);
    impl workbench::train::TrainSink for Sink {
        fn event(&mut self, e: &workbench::train::TrainEvent) {
            if let workbench::train::TrainEvent::Step {
                loss, grad_norm, ..
            } = e
            {
                assert!(grad_norm.is_finite());
                self.0.push(*loss);
            }
        }
        fn checkpoint(&mut self, _: usize, _: &workbench::model::Llama) {}
    }
    let mut sink = Sink(vec![]);
    let s = workbench::train::train(
        &mut model,
        &ex,
        &ex,
        &settings,
        0,
        &mut sink,
        &std::sync::atomic::AtomicBool::new(false),
    );
    assert_eq!(sink.0.len(), 12);
    assert!(
        s.val_loss_after < s.val_loss_before * 0.9,
        "{} -> {}",
        s.val_loss_before,
        s.val_loss_after
    );
}

/// An adapter written by Hugging Face PEFT (eval/reference/peft_fixtures.py) loads onto the
/// real model and gives PEFT's logits; the adapter files the workbench writes use PEFT's
/// tensor names and config keys.
#[test]
fn peft_adapter_imports_with_peft_logits_and_exports_in_its_names() {
    let dir = fixtures().join("peft/smollm2_r2");
    let reference = crate::common::json(&fixtures().join("peft/smollm2_r2_reference.json"));
    let (cfg, weights) = lora::load_peft(&dir).expect("load PEFT adapter");
    assert_eq!((cfg.r, cfg.lora_alpha), (2, 8.0));
    assert_eq!(weights.len(), 60, "q_proj and down_proj in 30 layers");
    let bundle = workbench::model::ModelBundle::open(&crate::common::real_model_path()).unwrap();
    let dev = inference_device();
    let (mut model, _) = bundle.build(&dev).unwrap();
    let ids: Vec<u32> = reference["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let base_last = to_vec(model.forward_last(model.tokens(&ids, 1), None));
    let want_base = crate::common::b64_f32(reference["base_last"].as_str().unwrap());
    assert!(max_abs_diff(&base_last, &want_base) <= 1e-3);
    lora::attach_weights(&mut model, &cfg, &weights, &dev).unwrap();
    let got = to_vec(model.forward_last(model.tokens(&ids, 1), None));
    let want = crate::common::b64_f32(reference["adapted_last"].as_str().unwrap());
    let d = max_abs_diff(&got, &want);
    assert!(
        reference["adapter_effect"].as_f64().unwrap() > 0.1,
        "the fixture adapter must change the logits"
    );
    assert!(d <= 1e-3, "PEFT adapter logits differ by {d}");
    // Export: same tensor names and shapes as PEFT's own file.
    let out = tempfile::tempdir().unwrap();
    lora::save_peft(out.path(), &cfg, &lora::extract(&model), "x").unwrap();
    let names = |p: &std::path::Path| {
        let bytes = std::fs::read(p.join("adapter_model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut v: Vec<(String, Vec<usize>)> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.shape().to_vec()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(out.path()), names(&dir));
    let (cfg2, w2) = lora::load_peft(out.path()).unwrap();
    assert_eq!(cfg2, cfg);
    assert_eq!(w2, weights);
}
