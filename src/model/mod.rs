//! Llama-family models: configuration, weight import (GGUF, Hugging Face), tokenizer.

pub mod gguf;
pub mod tokenizer;
