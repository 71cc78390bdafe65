//! (temporary stub; the real builder lands from branch gguf)
use std::path::Path;
use super::gguf::GgufFile;
#[derive(Debug, thiserror::Error)]
#[error("tokenizer: {0}")]
pub struct TokenizerError(pub String);
pub struct TokenizerBundle { pub tokenizer: tokenizers::Tokenizer, pub bos_id: Option<u32>, pub eos_id: Option<u32>, pub pad_id: Option<u32>, pub chat_template: Option<String>, pub add_bos: bool }
pub fn from_gguf(_f: &GgufFile) -> Result<TokenizerBundle, TokenizerError> { Err(TokenizerError("stub".into())) }
pub fn from_hf_dir(d: &Path) -> Result<TokenizerBundle, TokenizerError> { Err(TokenizerError(d.display().to_string())) }
