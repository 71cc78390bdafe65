//! workbench: classify and scan company data, fine-tune Llama-family models with LoRA on
//! burn, merge and quantize to INT8, evaluate, benchmark, export and serve them.

pub mod audit;
pub mod data;
pub mod model;

/// Command-line front end (declared here while the lead integrates `src/cli/`).
pub mod cli {
    pub mod audit;
    pub mod scan;
}
