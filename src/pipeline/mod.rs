//! Runs a validated recipe stage by stage (model, data, baseline, train, evaluate, merge and
//! INT8, benchmark, export), writing into `runs/<run-id>/` and reporting through a
//! [`RunSink`] so the CLI, the TUI and JSON logs share one loop. Cancellable between steps.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use burn::tensor::FloatDType;

use crate::audit::{AuditEntry, AuditLog};
use crate::bench::{self, BenchResult};
use crate::data::classify::Level;
use crate::data::dlp::Scanner;
use crate::data::govern::{self, GovernanceReport};
use crate::data::ingest;
use crate::data::template::{CHATML_TEMPLATE, ChatTemplate};
use crate::data::tokenize::{self, ChatFormat, Example};
use crate::eval::{self, PromptResult};
use crate::export::{self, ExportInputs};
use crate::lora::{self, LoraConfig};
use crate::model::{Llama, ModelBundle, source};
use crate::recipe::Recipe;
use crate::train::{self, TrainEvent, TrainSettings, TrainSink, TrainSummary};

/// Largest tolerated |logit difference| between merged weights and base + adapter.
pub const MERGE_TOLERANCE: f32 = 1e-4;

/// The stages of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Model,
    Data,
    Baseline,
    Train,
    Evaluate,
    Quantize,
    Bench,
    Export,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Model,
        Stage::Data,
        Stage::Baseline,
        Stage::Train,
        Stage::Evaluate,
        Stage::Quantize,
        Stage::Bench,
        Stage::Export,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Stage::Model => "base model",
            Stage::Data => "data governance",
            Stage::Baseline => "baseline eval",
            Stage::Train => "LoRA training",
            Stage::Evaluate => "evaluate",
            Stage::Quantize => "merge + INT8",
            Stage::Bench => "benchmark",
            Stage::Export => "export",
        }
    }
}

/// What a run reports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunEvent {
    StageStarted {
        stage: Stage,
        index: usize,
        total: usize,
    },
    /// Progress within a stage (`done` of `total` units).
    Progress {
        stage: Stage,
        done: usize,
        total: usize,
        note: String,
    },
    Info {
        stage: Stage,
        line: String,
    },
    Warning {
        stage: Stage,
        line: String,
    },
    StageFinished {
        stage: Stage,
        seconds: f64,
    },
    Train(TrainEvent),
}

/// Receives run events.
pub trait RunSink {
    fn event(&mut self, event: &RunEvent);
}

/// Pipeline failures: each names the file, key, row or tensor involved.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Ingest(#[from] ingest::IngestError),
    #[error(transparent)]
    Policy(#[from] govern::PolicyFailure),
    #[error(transparent)]
    Tokenize(#[from] tokenize::TokenizeError),
    #[error(transparent)]
    Template(#[from] crate::data::template::TemplateError),
    #[error(transparent)]
    Export(#[from] export::ExportError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("{0}")]
    Other(String),
    #[error("cancelled")]
    Cancelled,
}

/// Final figures of a run (also written to `summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub artifact: PathBuf,
    pub governance: GovernanceReport,
    pub train_examples: usize,
    pub val_examples: usize,
    pub training: TrainSummary,
    pub val_ppl_before: f64,
    pub val_ppl_after: f64,
    pub heldout_ppl_before: Option<f64>,
    pub heldout_ppl_after: Option<f64>,
    pub heldout_ppl_int8: Option<f64>,
    pub int8_top1_agreement: Option<f64>,
    pub merge_max_logit_diff: f32,
    pub f32_weight_mib: f64,
    pub int8_weight_mib: Option<f64>,
    pub prompts_before: Vec<PromptResult>,
    pub prompts_after: Vec<PromptResult>,
    pub bench: Vec<BenchResult>,
    pub seconds: f64,
}

struct MetricsSink<'a> {
    file: std::fs::File,
    run: &'a mut dyn RunSink,
    checkpoints: PathBuf,
    lora: LoraConfig,
    model_id: String,
    lineage: serde_json::Value,
    error: Option<String>,
}

impl TrainSink for MetricsSink<'_> {
    fn event(&mut self, event: &TrainEvent) {
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(self.file, "{line}");
        }
        self.run.event(&RunEvent::Train(event.clone()));
    }

    fn checkpoint(&mut self, step: usize, model: &Llama) {
        let dir = self.checkpoints.join(format!("step-{step:06}"));
        let weights = lora::extract(model);
        if let Err(e) = lora::save_peft(&dir, &self.lora, &weights, &self.model_id)
            .and_then(|_| lora::save_lineage(&dir, &self.lineage))
        {
            self.error = Some(e.to_string());
        }
        self.run.event(&RunEvent::Info {
            stage: Stage::Train,
            line: format!("checkpoint {}", dir.display()),
        });
    }
}

fn read_prompts(path: &Path) -> Result<Vec<String>, PipelineError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| PipelineError::Other(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            PipelineError::Other(format!(
                "{}: row {}: malformed JSON: {e}",
                path.display(),
                i + 1
            ))
        })?;
        let p = v.get("prompt").and_then(|p| p.as_str()).ok_or_else(|| {
            PipelineError::Other(format!(
                "{}: row {}: key `prompt` missing or not a string",
                path.display(),
                i + 1
            ))
        })?;
        out.push(p.to_string());
    }
    Ok(out)
}

fn actor() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// The chat format of a model bundle: its own template (ChatML when it ships none).
pub fn chat_format(bundle: &ModelBundle) -> Result<ChatFormat, PipelineError> {
    let tb = &bundle.tokenizer;
    let token_text = |id: Option<u32>| {
        id.and_then(|i| tb.tokenizer.id_to_token(i))
            .unwrap_or_default()
    };
    let template_src = tb
        .chat_template
        .clone()
        .unwrap_or_else(|| CHATML_TEMPLATE.to_string());
    let template = ChatTemplate::new(
        &template_src,
        &token_text(tb.bos_id),
        &token_text(tb.eos_id),
    )?;
    let bos = if tb.add_bos { tb.bos_id } else { None };
    Ok(ChatFormat::new(
        template,
        tb.tokenizer.clone(),
        bos,
        tb.eos_id,
    )?)
}

/// Runs the whole recipe.
pub fn run(
    recipe: &Recipe,
    recipe_path: &Path,
    sink: &mut dyn RunSink,
    cancel: &AtomicBool,
) -> Result<RunSummary, PipelineError> {
    let t_run = Instant::now();
    let base = recipe.base_dir(recipe_path);
    let stamp = time::OffsetDateTime::now_utc();
    let stamp_id = format!(
        "{}-{:04}{:02}{:02}-{:02}{:02}{:02}",
        recipe.run.name,
        stamp.year(),
        u8::from(stamp.month()),
        stamp.day(),
        stamp.hour(),
        stamp.minute(),
        stamp.second()
    );
    let out_root = base.join(&recipe.run.output_dir);
    std::fs::create_dir_all(&out_root)
        .map_err(|e| PipelineError::Other(format!("{}: {e}", out_root.display())))?;
    // A run folder is created exclusively: two runs started in the same second get
    // `-2`, `-3`, ... instead of sharing one folder.
    let (run_id, run_dir) = (1..)
        .map(|n| {
            if n == 1 {
                stamp_id.clone()
            } else {
                format!("{stamp_id}-{n}")
            }
        })
        .map(|id| {
            let dir = out_root.join(&id);
            (id, dir)
        })
        .find_map(|(id, dir)| match std::fs::create_dir(&dir) {
            Ok(()) => Some(Ok((id, dir))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
            Err(e) => Some(Err(PipelineError::Other(format!("{}: {e}", dir.display())))),
        })
        .unwrap_or_else(|| Err(PipelineError::Other("no free run folder".into())))?;
    let recipe_json = serde_json::to_value(recipe).unwrap_or_default();
    let _ = export::write_atomic(
        &run_dir.join("recipe.json"),
        serde_json::to_string_pretty(&recipe_json)
            .unwrap_or_default()
            .as_bytes(),
    );
    let mut audit = AuditLog::open(&out_root.join("audit.jsonl"))?;
    let total = Stage::ALL.len();
    let mut stage_i = 0usize;
    let mut stage_t = Instant::now();
    let mut begin = |sink: &mut dyn RunSink, stage: Stage, stage_t: &mut Instant| {
        stage_i += 1;
        *stage_t = Instant::now();
        sink.event(&RunEvent::StageStarted {
            stage,
            index: stage_i,
            total,
        });
    };
    let check_cancel = || {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            Err(PipelineError::Cancelled)
        } else {
            Ok(())
        }
    };

    // 1. Model.
    begin(sink, Stage::Model, &mut stage_t);
    struct Notes<'a>(&'a mut dyn RunSink);
    impl source::ResolveSink for Notes<'_> {
        fn note(&mut self, line: &str) {
            self.0.event(&RunEvent::Info {
                stage: Stage::Model,
                line: line.to_string(),
            });
        }
    }
    let resolve_opts = source::ResolveOptions {
        allow_download: recipe.model.allow_download,
        ..Default::default()
    };
    let model_path = source::resolve_with(&recipe.model.source, &resolve_opts, &mut Notes(sink))?;
    let bundle = ModelBundle::open(&model_path)?;
    let format = chat_format(&bundle)?;
    let cfg = bundle.config.clone();
    sink.event(&RunEvent::Info {
        stage: Stage::Model,
        line: format!(
            "{} ({}): {:?}, {} layers, hidden {}, {}/{} heads, vocab {}, sha256 {}",
            model_path.display(),
            bundle.format,
            cfg.arch,
            cfg.num_layers,
            cfg.hidden_size,
            cfg.num_heads,
            cfg.num_kv_heads,
            cfg.vocab_size,
            &bundle.sha256[..12]
        ),
    });
    let pad = bundle
        .tokenizer
        .pad_id
        .or(bundle.tokenizer.eos_id)
        .unwrap_or(0);
    sink.event(&RunEvent::StageFinished {
        stage: Stage::Model,
        seconds: stage_t.elapsed().as_secs_f64(),
    });

    // 2. Data.
    begin(sink, Stage::Data, &mut stage_t);
    let mut scanner = Scanner::builtin();
    if let Some(extra) = &recipe.governance.extra_rules {
        scanner = scanner
            .with_extra_rules(&base.join(extra))
            .map_err(|e| PipelineError::Other(e.to_string()))?;
    }
    let mut used_records = Vec::new();
    let mut report_total = GovernanceReport::default();
    let mut decisions_all = Vec::new();
    let mut dataset_hashes = Vec::new();
    for (i, d) in recipe.datasets.iter().enumerate() {
        let path = base.join(&d.path);
        let records = ingest::read_records(&path, d.format, &d.level_column)?;
        let n = records.len();
        let (used, decisions, report) = govern::govern(
            records,
            &scanner,
            &recipe.governance.policy,
            &recipe.governance.source_rules,
            d.default_level,
        )?;
        sink.event(&RunEvent::Progress {
            stage: Stage::Data,
            done: i + 1,
            total: recipe.datasets.len(),
            note: format!("{}: {n} rows, {} used", d.path.display(), used.len()),
        });
        let file_sha = crate::model::sha256_file(&path)?;
        audit.append(AuditEntry {
            time: crate::audit::now_rfc3339(),
            actor: actor(),
            action: "train.dataset_use".into(),
            content_sha256: file_sha.clone(),
            level: report.highest_level_used,
            score: None,
            decision: format!(
                "used {} of {} rows ({})",
                used.len(),
                n,
                serde_json::to_string(&report.per_action).unwrap_or_default()
            ),
            model: Some(run_id.clone()),
            extra: Default::default(),
        })?;
        dataset_hashes.push(serde_json::json!({ "path": d.path, "sha256": file_sha, "rows": n, "used": used.len() }));
        merge_reports(&mut report_total, &report);
        decisions_all.extend(decisions);
        used_records.extend(used);
    }
    {
        let mut f = std::fs::File::create(run_dir.join("data_decisions.jsonl"))
            .map_err(|e| PipelineError::Other(e.to_string()))?;
        for d in &decisions_all {
            let _ = writeln!(f, "{}", serde_json::to_string(d).unwrap_or_default());
        }
    }
    sink.event(&RunEvent::Info {
        stage: Stage::Data,
        line: format!("per level: {}", fmt_counts(&report_total.per_level)),
    });
    sink.event(&RunEvent::Info {
        stage: Stage::Data,
        line: format!("per action: {}", fmt_counts(&report_total.per_action)),
    });
    if !report_total.findings_per_kind.is_empty() {
        sink.event(&RunEvent::Info {
            stage: Stage::Data,
            line: format!("findings: {}", fmt_counts(&report_total.findings_per_kind)),
        });
    }
    let data_fingerprint = govern::fingerprint(&used_records);
    let examples: Vec<Example> = used_records
        .iter()
        .map(|r| format.example(r, recipe.training.max_seq_len))
        .collect::<Result<_, _>>()?;
    if examples.len() < 2 {
        return Err(PipelineError::Other(format!(
            "only {} usable rows after governance; need at least 2",
            examples.len()
        )));
    }
    let (train_set, val_set) = tokenize::split(
        &examples,
        recipe.training.validation_fraction,
        recipe.run.seed,
    );
    sink.event(&RunEvent::Info {
        stage: Stage::Data,
        line: format!(
            "{} train / {} validation examples; highest level used: {}",
            train_set.len(),
            val_set.len(),
            report_total
                .highest_level_used
                .map_or("none".into(), |l| l.to_string())
        ),
    });
    sink.event(&RunEvent::StageFinished {
        stage: Stage::Data,
        seconds: stage_t.elapsed().as_secs_f64(),
    });
    check_cancel()?;

    // 3. Baseline.
    begin(sink, Stage::Baseline, &mut stage_t);
    let infer_dev = crate::backend::inference_device();
    let (base_model, load_report) = bundle.build(&infer_dev)?;
    for w in &load_report.warnings {
        sink.event(&RunEvent::Warning {
            stage: Stage::Baseline,
            line: w.clone(),
        });
    }
    let heldout_tokens = match &recipe.eval.heldout_text {
        Some(p) => {
            let text = std::fs::read_to_string(base.join(p))
                .map_err(|e| PipelineError::Other(format!("{}: {e}", base.join(p).display())))?;
            let mut ids = format.encode(&text)?;
            ids.truncate(recipe.eval.heldout_max_tokens);
            Some(ids)
        }
        None => None,
    };
    let prompts = match &recipe.eval.prompts {
        Some(p) => read_prompts(&base.join(p))?,
        None => vec![],
    };
    let window = recipe.training.max_seq_len;
    let heldout_ppl_before = heldout_tokens
        .as_ref()
        .map(|t| eval::text_perplexity(&base_model, t, window, pad));
    if let Some(p) = heldout_ppl_before {
        sink.event(&RunEvent::Info {
            stage: Stage::Baseline,
            line: format!("held-out perplexity {p:.2}"),
        });
    }
    let prompts_before = answer_with_progress(
        sink,
        Stage::Baseline,
        &base_model,
        &format,
        &prompts,
        recipe.eval.max_new_tokens,
    );
    for r in &prompts_before {
        sink.event(&RunEvent::Info {
            stage: Stage::Baseline,
            line: format!("{:?} -> {:?}", r.prompt, r.answer),
        });
    }
    drop(base_model);
    sink.event(&RunEvent::StageFinished {
        stage: Stage::Baseline,
        seconds: stage_t.elapsed().as_secs_f64(),
    });
    check_cancel()?;

    // 4. Train.
    begin(sink, Stage::Train, &mut stage_t);
    let train_dev = crate::backend::training_device();
    crate::backend::seed(&train_dev, recipe.run.seed);
    let (mut train_model, _) = bundle.build(&train_dev)?;
    let lora_cfg = LoraConfig {
        r: recipe.lora.r,
        lora_alpha: recipe.lora.lora_alpha,
        lora_dropout: recipe.lora.lora_dropout,
        target_modules: recipe.lora.target_modules.clone(),
    };
    lora::attach(&mut train_model, &lora_cfg, &train_dev);
    let settings = TrainSettings {
        max_steps: recipe.training.max_steps,
        batch_size: recipe.training.batch_size,
        learning_rate: recipe.training.learning_rate,
        warmup_steps: recipe.training.warmup_steps,
        weight_decay: recipe.training.weight_decay,
        grad_clip: recipe.training.grad_clip,
        eval_every: recipe.training.eval_every,
        checkpoint_every: recipe.training.checkpoint_every,
        seed: recipe.run.seed,
    };
    let metrics = std::fs::File::create(run_dir.join("metrics.jsonl"))
        .map_err(|e| PipelineError::Other(e.to_string()))?;
    let model_id = format!("workbench/{run_id}");
    let lineage = serde_json::json!({
        "run_id": run_id,
        "highest_data_level": report_total.highest_level_used,
        "base_model_sha256": bundle.sha256,
        "data_fingerprint": data_fingerprint,
    });
    let mut msink = MetricsSink {
        file: metrics,
        run: sink,
        checkpoints: run_dir.join("checkpoints"),
        lora: lora_cfg.clone(),
        model_id: model_id.clone(),
        lineage: lineage.clone(),
        error: None,
    };
    let training = train::train(
        &mut train_model,
        &train_set,
        &val_set,
        &settings,
        pad,
        &mut msink,
        cancel,
    );
    if let Some(e) = msink.error.take() {
        return Err(PipelineError::Other(format!("checkpoint failed: {e}")));
    }
    if training.cancelled {
        return Err(PipelineError::Cancelled);
    }
    let adapter = lora::extract(&train_model);
    drop(train_model);
    sink.event(&RunEvent::Info {
        stage: Stage::Train,
        line: format!(
            "validation loss {:.4} -> {:.4} in {} steps ({:.0} s)",
            training.val_loss_before, training.val_loss_after, training.steps, training.seconds
        ),
    });
    sink.event(&RunEvent::StageFinished {
        stage: Stage::Train,
        seconds: stage_t.elapsed().as_secs_f64(),
    });

    // 5. Evaluate (base + adapter, f32).
    begin(sink, Stage::Evaluate, &mut stage_t);
    let (mut adapted, _) = bundle.build(&infer_dev)?;
    lora::attach_weights(&mut adapted, &lora_cfg, &adapter, &infer_dev)
        .map_err(PipelineError::Other)?;
    let heldout_ppl_after = heldout_tokens
        .as_ref()
        .map(|t| eval::text_perplexity(&adapted, t, window, pad));
    let prompts_after = answer_with_progress(
        sink,
        Stage::Evaluate,
        &adapted,
        &format,
        &prompts,
        recipe.eval.max_new_tokens,
    );
    for r in &prompts_after {
        sink.event(&RunEvent::Info {
            stage: Stage::Evaluate,
            line: format!(
                "{:?} -> {:?}{}",
                r.prompt,
                r.answer,
                if r.stopped { "" } else { " [no stop]" }
            ),
        });
    }
    sink.event(&RunEvent::StageFinished {
        stage: Stage::Evaluate,
        seconds: stage_t.elapsed().as_secs_f64(),
    });
    check_cancel()?;

    // 6. Merge and INT8.
    begin(sink, Stage::Quantize, &mut stage_t);
    let merged = lora::merge(&adapted);
    let probe = format.prompt_ids(&[crate::data::template::Message::new(
        "user",
        "What is the capital of France?",
    )])?;
    // The check runs in f64: it compares the exported f32 merged weights with base + adapter
    // exactly, free of the f32 rounding that two different summation orders produce.
    let merge_diff = eval::max_logit_diff(
        &adapted.cast(FloatDType::F64),
        &merged.cast(FloatDType::F64),
        &probe,
    );
    let merge_diff_f32 = eval::max_logit_diff(&adapted, &merged, &probe);
    if !(merge_diff <= MERGE_TOLERANCE) {
        return Err(PipelineError::Other(format!(
            "merged weights disagree with base + adapter: max |logit diff| {merge_diff:.3e} > {MERGE_TOLERANCE:.0e}; refusing to quantize"
        )));
    }
    drop(adapted);
    sink.event(&RunEvent::Info { stage: Stage::Quantize, line: format!("merge check: max |logit diff| {merge_diff:.2e} <= {MERGE_TOLERANCE:.0e} (f64 evaluation; {merge_diff_f32:.2e} when both run in f32)") });
    let f32_bytes = merged.weight_bytes();
    let (int8, int8_bytes, heldout_ppl_int8, agreement) = if recipe.quantize.int8 {
        let (q, qr) = crate::quant::quantize_model(&merged);
        let ppl = heldout_tokens
            .as_ref()
            .map(|t| eval::text_perplexity(&q, t, window, pad));
        let agree = heldout_tokens
            .as_ref()
            .map(|t| eval::top1_agreement(&merged, &q, &t[..t.len().min(window)]));
        sink.event(&RunEvent::Info {
            stage: Stage::Quantize,
            line: format!(
                "INT8: {} layers, linear weights {:.1} MiB -> {:.1} MiB ({:.2}x smaller); model {:.1} MiB -> {:.1} MiB",
                qr.layers_quantized,
                qr.f32_linear_bytes as f64 / 1048576.0,
                qr.int8_linear_bytes as f64 / 1048576.0,
                qr.f32_linear_bytes as f64 / qr.int8_linear_bytes.max(1) as f64,
                f32_bytes as f64 / 1048576.0,
                q.weight_bytes() as f64 / 1048576.0
            ),
        });
        if let (Some(a), Some(b)) = (heldout_ppl_after, ppl) {
            sink.event(&RunEvent::Info { stage: Stage::Quantize, line: format!("held-out perplexity f32 {a:.3} vs INT8 {b:.3} (ratio {:.4}); top-1 agreement {:.3}", b / a, agree.unwrap_or(f64::NAN)) });
        }
        let bytes = q.weight_bytes();
        (Some(q), Some(bytes), ppl, agree)
    } else {
        (None, None, None, None)
    };
    sink.event(&RunEvent::StageFinished {
        stage: Stage::Quantize,
        seconds: stage_t.elapsed().as_secs_f64(),
    });
    check_cancel()?;

    // 7. Bench.
    begin(sink, Stage::Bench, &mut stage_t);
    let bench_prompts: Vec<String> = if recipe.bench.prompts.is_empty() {
        prompts.iter().take(3).cloned().collect()
    } else {
        recipe.bench.prompts.clone()
    };
    let bench_prompts = if bench_prompts.is_empty() {
        vec!["Tell me about the sea.".to_string()]
    } else {
        bench_prompts
    };
    let mut bench_results = vec![bench::bench_model(
        "f32",
        &merged,
        &format,
        &bench_prompts,
        recipe.bench.decode_tokens,
        recipe.bench.repeats,
        f32_bytes,
    )];
    if let (Some(q), Some(b)) = (&int8, int8_bytes) {
        bench_results.push(bench::bench_model(
            "int8",
            q,
            &format,
            &bench_prompts,
            recipe.bench.decode_tokens,
            recipe.bench.repeats,
            b,
        ));
    }
    for b in &bench_results {
        sink.event(&RunEvent::Info {
            stage: Stage::Bench,
            line: format!(
                "{}: TTFT p50 {:.1} ms / p95 {:.1} ms, decode {:.1} tok/s (p50 {:.2} ms, p95 {:.2} ms per token), prefill {:.0} tok/s, weights {:.1} MiB",
                b.label, b.ttft_ms_p50, b.ttft_ms_p95, b.decode_tokens_per_s, b.decode_ms_per_token_p50, b.decode_ms_per_token_p95, b.prefill_tokens_per_s, b.weight_mib
            ),
        });
    }
    if bench_results.len() == 2 {
        sink.event(&RunEvent::Info {
            stage: Stage::Bench,
            line: format!(
                "INT8 / f32 decode speed: {:.2}x",
                bench_results[1].decode_tokens_per_s / bench_results[0].decode_tokens_per_s
            ),
        });
    }
    sink.event(&RunEvent::StageFinished {
        stage: Stage::Bench,
        seconds: stage_t.elapsed().as_secs_f64(),
    });

    // 8. Export.
    begin(sink, Stage::Export, &mut stage_t);
    let artifact = run_dir.join("artifact");
    let exported = int8.as_ref().unwrap_or(&merged);
    let summary_eval = serde_json::json!({
        "val_loss_before": training.val_loss_before,
        "val_loss_after": training.val_loss_after,
        "val_ppl_before": training.val_loss_before.exp(),
        "val_ppl_after": training.val_loss_after.exp(),
        "heldout_ppl_before": heldout_ppl_before,
        "heldout_ppl_after": heldout_ppl_after,
        "heldout_ppl_int8": heldout_ppl_int8,
        "int8_top1_agreement": agreement,
        "merge_max_logit_diff": merge_diff,
        "prompts_before": prompts_before,
        "prompts_after": prompts_after,
    });
    let tb = &bundle.tokenizer;
    let token_text = |id: Option<u32>| id.and_then(|i| tb.tokenizer.id_to_token(i));
    let report_md = render_report(
        &run_id,
        &report_total,
        &training,
        &summary_eval,
        &bench_results,
    );
    let inputs = ExportInputs {
        lineage: export::Lineage {
            run_id: run_id.clone(),
            model_id: model_id.clone(),
            base_model: serde_json::json!({ "source": recipe.model.source, "path": model_path, "format": bundle.format, "sha256": bundle.sha256, "arch": cfg.arch }),
            highest_data_level: report_total.highest_level_used,
            data: serde_json::json!({ "fingerprint": data_fingerprint, "datasets": dataset_hashes, "governance": report_total }),
            recipe: recipe_json,
            training: serde_json::to_value(&training).unwrap_or_default(),
            eval: summary_eval,
            bench: serde_json::to_value(&bench_results).unwrap_or_default(),
        },
        tokenizer_json: &format.tokenizer,
        chat_template: format.template.source(),
        bos_token: token_text(tb.bos_id),
        eos_token: token_text(tb.eos_id),
        stop_ids: format.stop_ids.clone(),
        adapter: Some((&lora_cfg, &adapter, lineage)),
        report_md,
    };
    let manifest = export::export(exported, &inputs, &artifact)?;
    audit.append(AuditEntry {
        time: crate::audit::now_rfc3339(),
        actor: actor(),
        action: "export".into(),
        content_sha256: manifest
            .files
            .get("model.safetensors")
            .cloned()
            .unwrap_or_default(),
        level: report_total.highest_level_used,
        score: None,
        decision: format!("exported {}", artifact.display()),
        model: Some(model_id.clone()),
        extra: Default::default(),
    })?;
    sink.event(&RunEvent::Info {
        stage: Stage::Export,
        line: format!(
            "artifact {} ({} files)",
            artifact.display(),
            manifest.files.len() + 1
        ),
    });
    sink.event(&RunEvent::StageFinished {
        stage: Stage::Export,
        seconds: stage_t.elapsed().as_secs_f64(),
    });

    let summary = RunSummary {
        run_id,
        run_dir: run_dir.clone(),
        artifact,
        governance: report_total,
        train_examples: train_set.len(),
        val_examples: val_set.len(),
        val_ppl_before: training.val_loss_before.exp(),
        val_ppl_after: training.val_loss_after.exp(),
        training,
        heldout_ppl_before,
        heldout_ppl_after,
        heldout_ppl_int8,
        int8_top1_agreement: agreement,
        merge_max_logit_diff: merge_diff,
        f32_weight_mib: f32_bytes as f64 / 1048576.0,
        int8_weight_mib: int8_bytes.map(|b| b as f64 / 1048576.0),
        prompts_before,
        prompts_after,
        bench: bench_results,
        seconds: t_run.elapsed().as_secs_f64(),
    };
    let _ = export::write_atomic(
        &run_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)
            .unwrap_or_default()
            .as_bytes(),
    );
    Ok(summary)
}

/// Greedy answers to the eval prompts, one progress event per prompt.
fn answer_with_progress(
    sink: &mut dyn RunSink,
    stage: Stage,
    model: &Llama,
    format: &ChatFormat,
    prompts: &[String],
    max_tokens: usize,
) -> Vec<PromptResult> {
    let mut out = Vec::with_capacity(prompts.len());
    for (i, p) in prompts.iter().enumerate() {
        out.extend(eval::answer_prompts(
            model,
            format,
            std::slice::from_ref(p),
            max_tokens,
        ));
        sink.event(&RunEvent::Progress {
            stage,
            done: i + 1,
            total: prompts.len(),
            note: format!("prompt {}/{}", i + 1, prompts.len()),
        });
    }
    out
}

fn merge_reports(total: &mut GovernanceReport, r: &GovernanceReport) {
    total.rows_in += r.rows_in;
    total.rows_used += r.rows_used;
    for (k, v) in &r.per_level {
        *total.per_level.entry(k.clone()).or_default() += v;
    }
    for (k, v) in &r.per_action {
        *total.per_action.entry(k.clone()).or_default() += v;
    }
    for (k, v) in &r.findings_per_kind {
        *total.findings_per_kind.entry(k.clone()).or_default() += v;
    }
    total.highest_level_used = match (total.highest_level_used, r.highest_level_used) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
}

fn fmt_counts(m: &std::collections::BTreeMap<String, usize>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_report(
    run_id: &str,
    g: &GovernanceReport,
    t: &TrainSummary,
    eval: &serde_json::Value,
    bench: &[BenchResult],
) -> String {
    let mut s = format!("# workbench run {run_id}\n\n## Data\n\n");
    s += &format!(
        "- rows in: {}, used for training: {}\n",
        g.rows_in, g.rows_used
    );
    s += &format!(
        "- per level: {}\n- per action: {}\n",
        fmt_counts(&g.per_level),
        fmt_counts(&g.per_action)
    );
    s += &format!(
        "- highest level used in training: {}\n\n",
        g.highest_level_used
            .map_or_else(|| "none".to_string(), |l: Level| l.to_string())
    );
    s += "## Training\n\n";
    s += &format!(
        "- steps: {}, trained tokens: {}, {:.0} s\n",
        t.steps, t.trained_tokens, t.seconds
    );
    s += &format!(
        "- validation loss: {:.4} -> {:.4}\n\n",
        t.val_loss_before, t.val_loss_after
    );
    s += "## Evaluation\n\n";
    for k in [
        "val_ppl_before",
        "val_ppl_after",
        "heldout_ppl_before",
        "heldout_ppl_after",
        "heldout_ppl_int8",
        "int8_top1_agreement",
        "merge_max_logit_diff",
    ] {
        s += &format!(
            "- {k}: {}\n",
            eval.get(k).map(|v| v.to_string()).unwrap_or_default()
        );
    }
    s += "\n| prompt | before | after |\n|---|---|---|\n";
    if let (Some(b), Some(a)) = (
        eval["prompts_before"].as_array(),
        eval["prompts_after"].as_array(),
    ) {
        for (x, y) in b.iter().zip(a) {
            let cell = |v: &serde_json::Value, k: &str| {
                v[k].as_str()
                    .unwrap_or("")
                    .replace('|', "\\|")
                    .replace('\n', " ")
            };
            s += &format!(
                "| {} | {} | {} |\n",
                cell(x, "prompt"),
                cell(x, "answer"),
                cell(y, "answer")
            );
        }
    }
    s += "\n## Latency\n\n| model | TTFT p50 ms | TTFT p95 ms | decode tok/s | per-token p95 ms | weights MiB |\n|---|---|---|---|---|---|\n";
    for b in bench {
        s += &format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} |\n",
            b.label,
            b.ttft_ms_p50,
            b.ttft_ms_p95,
            b.decode_tokens_per_s,
            b.decode_ms_per_token_p95,
            b.weight_mib
        );
    }
    s
}

/// A model ready for inference: the burn model, its chat format and where it came from.
pub struct LoadedModel {
    pub model: Llama,
    pub format: ChatFormat,
    pub bundle: ModelBundle,
    /// The artifact's manifest when `spec` is an exported artifact (verified against its hashes).
    pub manifest: Option<export::Manifest>,
}

/// Resolves and loads a model or an exported artifact for generation or serving.
pub fn open_model(
    spec: &str,
    notes: &mut dyn source::ResolveSink,
) -> Result<LoadedModel, PipelineError> {
    open_model_with(spec, &source::ResolveOptions::default(), notes)
}

/// [`open_model`] with resolver options (for example an allowed hub download).
pub fn open_model_with(
    spec: &str,
    opts: &source::ResolveOptions,
    notes: &mut dyn source::ResolveSink,
) -> Result<LoadedModel, PipelineError> {
    let path = source::resolve_with(spec, opts, notes)?;
    let manifest = if path.join("manifest.json").exists() {
        Some(export::verify_artifact(&path)?)
    } else {
        None
    };
    let bundle = ModelBundle::open(&path)?;
    let format = chat_format(&bundle)?;
    let (model, report) = bundle.build(&crate::backend::inference_device())?;
    for w in report.warnings {
        notes.note(&format!("warning: {w}"));
    }
    Ok(LoadedModel {
        model,
        format,
        bundle,
        manifest,
    })
}
