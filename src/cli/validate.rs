//! `workbench validate`: parses and validates a recipe, listing every problem.

use std::path::PathBuf;

use crate::recipe::Recipe;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The recipe (TOML) to check.
    pub recipe: PathBuf,
}

pub fn run(args: &ValidateArgs) -> anyhow::Result<i32> {
    let r = Recipe::load(&args.recipe)?;
    println!(
        "{}: ok ({} datasets, {} steps, LoRA r={} on {})",
        args.recipe.display(),
        r.datasets.len(),
        r.training.max_steps,
        r.lora.r,
        r.lora.target_modules.join(",")
    );
    Ok(0)
}
