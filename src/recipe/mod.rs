//! Recipes: the TOML file that drives a whole run. Parsing rejects unknown keys with their
//! line; validation reports every problem at once and never rewrites the user's values.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::classify::{Level, Policy, SourceRule};

/// Recipe problems.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: invalid recipe:\n  - {}", problems.join("\n  - "))]
    Invalid { path: String, problems: Vec<String> },
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub run: RunSection,
    pub model: ModelSection,
    #[serde(default)]
    pub datasets: Vec<DatasetSection>,
    #[serde(default)]
    pub governance: GovernanceSection,
    pub training: TrainingSection,
    pub lora: LoraSection,
    #[serde(default)]
    pub eval: EvalSection,
    #[serde(default)]
    pub quantize: QuantizeSection,
    #[serde(default)]
    pub bench: BenchSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Used in the run id.
    pub name: String,
    /// Where `runs/<run-id>/` is created.
    #[serde(default = "default_output_dir")]
    pub output_dir: PathBuf,
    #[serde(default)]
    pub seed: u64,
}

fn default_output_dir() -> PathBuf {
    PathBuf::from("runs")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A path, `pip:NAME==VERSION[#file]`, or a Hugging Face repo id in the local cache.
    pub source: String,
    /// Allow downloading a Hugging Face repo that is not in the local cache (off by default).
    #[serde(default)]
    pub allow_download: bool,
}

/// Record shape of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetFormat {
    /// Columns instruction / input / output.
    Alpaca,
    /// A `messages` column of {role, content}.
    Chat,
    /// Decided from the columns present.
    Auto,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    /// JSONL, CSV or Parquet file, relative to the recipe's folder's parent (the project root) or absolute.
    pub path: PathBuf,
    #[serde(default = "default_format")]
    pub format: DatasetFormat,
    /// Level for rows without a label column value.
    #[serde(default = "default_level")]
    pub default_level: Level,
    /// Column holding each row's classification.
    #[serde(default = "default_level_column")]
    pub level_column: String,
}

fn default_format() -> DatasetFormat {
    DatasetFormat::Auto
}
fn default_level() -> Level {
    Level::Internal
}
fn default_level_column() -> String {
    "classification".into()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceSection {
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub source_rules: Vec<SourceRule>,
    /// Extra DLP rules file (TOML), added to the built-in rules.
    pub extra_rules: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSection {
    pub max_steps: usize,
    pub batch_size: usize,
    pub max_seq_len: usize,
    pub learning_rate: f64,
    #[serde(default)]
    pub warmup_steps: usize,
    #[serde(default)]
    pub weight_decay: f64,
    /// Global gradient-norm clip; 0 disables.
    #[serde(default = "default_clip")]
    pub grad_clip: f64,
    #[serde(default = "default_val_fraction")]
    pub validation_fraction: f64,
    /// Validation loss every N steps (and at the end).
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
    /// Checkpoint the adapter every N steps (and at the end).
    #[serde(default = "default_eval_every")]
    pub checkpoint_every: usize,
}

fn default_clip() -> f64 {
    1.0
}
fn default_val_fraction() -> f64 {
    0.1
}
fn default_eval_every() -> usize {
    10
}

/// LoRA settings in PEFT's own names, so real adapter files map onto them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSection {
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    pub target_modules: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Plain text for held-out perplexity.
    pub heldout_text: Option<PathBuf>,
    /// JSONL of {"prompt": ...} generated greedily before and after training.
    pub prompts: Option<PathBuf>,
    #[serde(default = "default_new_tokens")]
    pub max_new_tokens: usize,
    /// Tokens of held-out text scored (in windows of `training.max_seq_len`).
    #[serde(default = "default_ppl_tokens")]
    pub heldout_max_tokens: usize,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self {
            heldout_text: None,
            prompts: None,
            max_new_tokens: default_new_tokens(),
            heldout_max_tokens: default_ppl_tokens(),
        }
    }
}

fn default_new_tokens() -> usize {
    48
}
fn default_ppl_tokens() -> usize {
    1024
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizeSection {
    #[serde(default = "yes")]
    pub int8: bool,
}

impl Default for QuantizeSection {
    fn default() -> Self {
        Self { int8: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchSection {
    /// Tokens decoded per prompt.
    #[serde(default = "default_bench_tokens")]
    pub decode_tokens: usize,
    /// Times each prompt is run (after one warm-up).
    #[serde(default = "default_repeats")]
    pub repeats: usize,
    /// Prompts to time; defaults to the eval prompts.
    #[serde(default)]
    pub prompts: Vec<String>,
}

impl Default for BenchSection {
    fn default() -> Self {
        Self {
            decode_tokens: default_bench_tokens(),
            repeats: default_repeats(),
            prompts: vec![],
        }
    }
}

fn default_bench_tokens() -> usize {
    32
}
fn default_repeats() -> usize {
    3
}

/// The projections LoRA may target.
pub const LORA_TARGETS: [&str; 7] = crate::model::llama::PROJECTION_NAMES;

impl Recipe {
    /// Reads, parses and validates a recipe file.
    pub fn load(path: &Path) -> Result<Self, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let recipe = Self::parse(&text, path)?;
        recipe.validate(path)?;
        Ok(recipe)
    }

    /// Parses recipe text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, RecipeError> {
        toml::from_str(text).map_err(|e| RecipeError::Parse {
            path: path.display().to_string(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Checks every value; all problems are reported together.
    pub fn validate(&self, path: &Path) -> Result<(), RecipeError> {
        let mut p = Vec::new();
        let t = &self.training;
        if self.run.name.trim().is_empty() {
            p.push("`run.name` must not be empty".to_string());
        }
        if self.model.source.trim().is_empty() {
            p.push("`model.source` must not be empty".to_string());
        }
        if self.datasets.is_empty() {
            p.push("at least one `[[datasets]]` entry is required".to_string());
        }
        for (field, v) in [
            ("training.max_steps", t.max_steps),
            ("training.batch_size", t.batch_size),
            ("training.max_seq_len", t.max_seq_len),
            ("training.eval_every", t.eval_every),
            ("training.checkpoint_every", t.checkpoint_every),
            ("lora.r", self.lora.r),
            ("bench.repeats", self.bench.repeats),
        ] {
            if v == 0 {
                p.push(format!("`{field}` must be > 0 (got 0)"));
            }
        }
        if t.max_seq_len < 8 {
            p.push(format!(
                "`training.max_seq_len` must be >= 8 (got {})",
                t.max_seq_len
            ));
        }
        if !(t.learning_rate > 0.0 && t.learning_rate < 1.0) {
            p.push(format!(
                "`training.learning_rate` must be in (0, 1) (got {})",
                t.learning_rate
            ));
        }
        if t.warmup_steps > t.max_steps {
            p.push(format!(
                "`training.warmup_steps` must be <= training.max_steps {} (got {})",
                t.max_steps, t.warmup_steps
            ));
        }
        if !(0.0..0.9).contains(&t.validation_fraction) || t.validation_fraction <= 0.0 {
            p.push(format!(
                "`training.validation_fraction` must be in (0, 0.9) (got {})",
                t.validation_fraction
            ));
        }
        if t.grad_clip < 0.0 {
            p.push(format!(
                "`training.grad_clip` must be >= 0 (got {})",
                t.grad_clip
            ));
        }
        if t.weight_decay < 0.0 {
            p.push(format!(
                "`training.weight_decay` must be >= 0 (got {})",
                t.weight_decay
            ));
        }
        if !(0.0..1.0).contains(&self.lora.lora_dropout) {
            p.push(format!(
                "`lora.lora_dropout` must be in [0, 1) (got {})",
                self.lora.lora_dropout
            ));
        }
        if self.lora.lora_alpha <= 0.0 {
            p.push(format!(
                "`lora.lora_alpha` must be > 0 (got {})",
                self.lora.lora_alpha
            ));
        }
        if self.lora.target_modules.is_empty() {
            p.push("`lora.target_modules` must name at least one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj".into());
        }
        for m in &self.lora.target_modules {
            if !LORA_TARGETS.contains(&m.as_str()) {
                p.push(format!(
                    "`lora.target_modules`: unknown module {m:?} (expected one of {})",
                    LORA_TARGETS.join(", ")
                ));
            }
        }
        let base = self.base_dir(path);
        for (i, d) in self.datasets.iter().enumerate() {
            let full = base.join(&d.path);
            if !full.exists() {
                p.push(format!(
                    "`datasets[{i}].path`: file {} does not exist",
                    full.display()
                ));
            }
        }
        for (key, f) in [
            ("eval.heldout_text", &self.eval.heldout_text),
            ("eval.prompts", &self.eval.prompts),
        ] {
            if let Some(f) = f {
                let full = base.join(f);
                if !full.exists() {
                    p.push(format!("`{key}`: file {} does not exist", full.display()));
                }
            }
        }
        if let Some(f) = &self.governance.extra_rules {
            if !base.join(f).exists() {
                p.push(format!(
                    "`governance.extra_rules`: file {} does not exist",
                    base.join(f).display()
                ));
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(RecipeError::Invalid {
                path: path.display().to_string(),
                problems: p,
            })
        }
    }

    /// Relative paths in a recipe are resolved against the folder above `recipes/`
    /// (the project root) when the recipe lives in a `recipes` folder, else its own folder.
    pub fn base_dir(&self, recipe_path: &Path) -> PathBuf {
        let parent = recipe_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let parent = if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent
        };
        if parent.file_name().is_some_and(|n| n == "recipes") {
            parent
                .parent()
                .map(Path::to_path_buf)
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from("."))
        } else {
            parent
        }
    }
}
