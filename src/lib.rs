//! workbench: classify and scan company data, fine-tune Llama-family models with LoRA on
//! burn, merge and quantize to INT8, evaluate, benchmark, export and serve them.

pub mod audit;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod data;
pub mod eval;
pub mod export;
pub mod generate;
pub mod lora;
pub mod model;
pub mod pipeline;
pub mod quant;
pub mod recipe;
pub mod serve;
pub mod train;
pub mod tui;
