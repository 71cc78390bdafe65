//! Tokenizers for imported models: builds a `tokenizers::Tokenizer` from GGUF metadata
//! (byte-level BPE, `tokenizer.ggml.model = "gpt2"`) or loads a Hugging Face tokenizer
//! directory, together with the special ids, BOS policy and chat template a model needs.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::gguf::{GgufError, GgufFile, MetaValue};

/// `tokenizer.ggml.model`: the tokenizer family (`gpt2` = byte-level BPE).
pub const KEY_MODEL: &str = "tokenizer.ggml.model";
/// `tokenizer.ggml.pre`: llama.cpp's name for the pre-tokenizer (split regexes).
pub const KEY_PRE: &str = "tokenizer.ggml.pre";
/// `tokenizer.ggml.tokens`: the vocabulary, indexed by token id.
pub const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
/// `tokenizer.ggml.token_type`: one [`GgufTokenType`] per token.
pub const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
/// `tokenizer.ggml.merges`: BPE merges as `"left right"`, highest priority first.
pub const KEY_MERGES: &str = "tokenizer.ggml.merges";
/// `tokenizer.ggml.bos_token_id`.
pub const KEY_BOS_ID: &str = "tokenizer.ggml.bos_token_id";
/// `tokenizer.ggml.eos_token_id`.
pub const KEY_EOS_ID: &str = "tokenizer.ggml.eos_token_id";
/// `tokenizer.ggml.eot_token_id` (end of turn; an extra stop token).
pub const KEY_EOT_ID: &str = "tokenizer.ggml.eot_token_id";
/// `tokenizer.ggml.eom_token_id` (end of message; an extra stop token).
pub const KEY_EOM_ID: &str = "tokenizer.ggml.eom_token_id";
/// `tokenizer.ggml.padding_token_id`.
pub const KEY_PAD_ID: &str = "tokenizer.ggml.padding_token_id";
/// `tokenizer.ggml.add_bos_token`.
pub const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
/// `tokenizer.ggml.add_eos_token`.
pub const KEY_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
/// `tokenizer.chat_template`: the Jinja chat template.
pub const KEY_CHAT_TEMPLATE: &str = "tokenizer.chat_template";

/// The only `tokenizer.ggml.model` supported: byte-level BPE.
pub const MODEL_GPT2: &str = "gpt2";

/// llama.cpp's `tokenizer.ggml.pre` names that split digits one by one and then apply the
/// GPT-2 regex (`LLAMA_VOCAB_PRE_TYPE_SMOLLM` and the types that share its regexes).
const PRE_DIGITS_THEN_GPT2: &[&str] = &[
    "smollm",
    "starcoder",
    "refact",
    "command-r",
    "codeshell",
    "exaone",
    "minerva-7b",
];
/// Names llama.cpp maps to the Llama 3 regex (`LLAMA_VOCAB_PRE_TYPE_LLAMA3`).
const PRE_LLAMA3: &[&str] = &["llama-bpe", "llama3", "llama-v3"];

/// The Llama 3 split regex (llama.cpp `LLAMA_VOCAB_PRE_TYPE_LLAMA3`, Llama 3 `tokenizer.json`).
pub const LLAMA3_SPLIT_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The GPT-2 split regex as `tokenizers`' ByteLevel pre-tokenizer applies it.
pub const GPT2_SPLIT_REGEX: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// llama.cpp's `LLAMA_VOCAB_PRE_TYPE_DEFAULT` regexes, applied one after the other.
const DEFAULT_PRE_REGEXES: &[&str] = &[
    r"[\p{P}\$\+<=>\^~\|]+",
    GPT2_SPLIT_REGEX,
    r"\p{N}+",
    r"[0-9][0-9][0-9]",
];

/// Hugging Face file names read by [`from_hf_dir`].
const HF_TOKENIZER_JSON: &str = "tokenizer.json";
const HF_TOKENIZER_CONFIG: &str = "tokenizer_config.json";
const HF_GENERATION_CONFIG: &str = "generation_config.json";
const HF_CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";

/// A tokenizer with what a model needs around it.
#[derive(Debug, Clone)]
pub struct TokenizerBundle {
    /// The tokenizer. `encode(text, true)` adds BOS (and EOS) exactly when the model's
    /// metadata asks for it, like llama.cpp and transformers.
    pub tokenizer: Tokenizer,
    /// Beginning-of-sequence id.
    pub bos_id: Option<u32>,
    /// End-of-sequence id.
    pub eos_id: Option<u32>,
    /// Padding id.
    pub pad_id: Option<u32>,
    /// Every id that ends generation: `eos_id` plus end-of-turn / end-of-message ids (GGUF) or
    /// all of `generation_config.json`'s `eos_token_id` (Hugging Face), without repeats.
    pub stop_ids: Vec<u32>,
    /// The Jinja chat template, if the model ships one.
    pub chat_template: Option<String>,
    /// Whether a BOS token is prepended to every sequence.
    pub add_bos: bool,
}

/// Errors from building a tokenizer. Each names the file and, where one is involved, the
/// metadata key or config field.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// Reading the GGUF metadata failed (missing key, wrong type, ...).
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// `tokenizer.ggml.model` names a tokenizer family this module cannot build.
    #[error(
        "{}: `{key}` = \"{value}\" is not supported (only \"{MODEL_GPT2}\", byte-level BPE)",
        file.display()
    )]
    UnsupportedModel {
        file: PathBuf,
        key: &'static str,
        value: String,
    },
    /// `tokenizer.ggml.pre` names a pre-tokenizer this module does not know.
    #[error("{}: `{key}` = \"{value}\" is not a supported pre-tokenizer (supported: {supported})", file.display())]
    UnsupportedPreTokenizer {
        file: PathBuf,
        key: &'static str,
        value: String,
        supported: String,
    },
    /// Tokenizer metadata is malformed (bad merge, id out of range, length mismatch, ...).
    #[error("{}: `{key}`: {detail}", file.display())]
    BadMetadata {
        file: PathBuf,
        key: String,
        detail: String,
    },
    /// The `tokenizers` crate rejected the tokenizer built or loaded.
    #[error("{}: cannot build tokenizer: {source}", file.display())]
    Build {
        file: PathBuf,
        #[source]
        source: tokenizers::Error,
    },
    /// A file could not be read.
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON config file is not valid JSON.
    #[error("{}: invalid JSON: {source}", file.display())]
    Json {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// llama.cpp's token kinds (`llama_token_type`), as stored in `tokenizer.ggml.token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufTokenType {
    Undefined,
    Normal,
    Unknown,
    /// Special control token such as `<|im_start|>`: matched whole, skipped when decoding
    /// with `skip_special_tokens`.
    Control,
    /// Added token such as `<think>`: matched whole in text, decoded as text.
    UserDefined,
    Unused,
    Byte,
    /// A value outside llama.cpp's enum.
    Other(i64),
}

impl GgufTokenType {
    /// Decodes a `tokenizer.ggml.token_type` entry.
    pub fn from_code(code: i64) -> GgufTokenType {
        match code {
            0 => GgufTokenType::Undefined,
            1 => GgufTokenType::Normal,
            2 => GgufTokenType::Unknown,
            3 => GgufTokenType::Control,
            4 => GgufTokenType::UserDefined,
            5 => GgufTokenType::Unused,
            6 => GgufTokenType::Byte,
            other => GgufTokenType::Other(other),
        }
    }
}

/// Pre-tokenizers (split rules) this module can build, keyed by `tokenizer.ggml.pre`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizerKind {
    /// Plain GPT-2 regex (`gpt2`).
    Gpt2,
    /// Single digits, then the GPT-2 regex (`smollm`, `starcoder`, ...): SmolLM2's
    /// `Sequence[Digits(individual_digits), ByteLevel(use_regex)]`.
    DigitsThenGpt2,
    /// The Llama 3 regex, then byte-level mapping without a regex (`llama-bpe`); BPE skips
    /// merging words that are already whole tokens, as Llama 3's `ignore_merges` does.
    Llama3,
    /// llama.cpp's fallback regexes (`default`, or no `tokenizer.ggml.pre` at all).
    LlamaCppDefault,
}

impl PreTokenizerKind {
    /// The kind llama.cpp uses for a `tokenizer.ggml.pre` value (`None` = key absent).
    pub fn from_gguf_name(name: Option<&str>) -> Option<PreTokenizerKind> {
        match name {
            None | Some("default") => Some(PreTokenizerKind::LlamaCppDefault),
            Some("gpt2") => Some(PreTokenizerKind::Gpt2),
            Some(n) if PRE_DIGITS_THEN_GPT2.contains(&n) => Some(PreTokenizerKind::DigitsThenGpt2),
            Some(n) if PRE_LLAMA3.contains(&n) => Some(PreTokenizerKind::Llama3),
            Some(_) => None,
        }
    }

    fn supported_names() -> String {
        let mut names = vec!["default", "gpt2"];
        names.extend(PRE_DIGITS_THEN_GPT2);
        names.extend(PRE_LLAMA3);
        names.join(", ")
    }

    /// Whether BPE should emit a pre-token whole when it is already in the vocabulary.
    fn ignore_merges(self) -> bool {
        self == PreTokenizerKind::Llama3
    }

    fn build(self) -> Result<PreTokenizerWrapper, tokenizers::Error> {
        let byte_level_with_regex = ByteLevel::new(false, true, true);
        let byte_level_no_regex = ByteLevel::new(false, true, false);
        let isolated = |regex: &str| {
            Split::new(
                SplitPattern::Regex(regex.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map(PreTokenizerWrapper::from)
        };
        Ok(match self {
            PreTokenizerKind::Gpt2 => byte_level_with_regex.into(),
            PreTokenizerKind::DigitsThenGpt2 => {
                Sequence::new(vec![Digits::new(true).into(), byte_level_with_regex.into()]).into()
            }
            PreTokenizerKind::Llama3 => Sequence::new(vec![
                isolated(LLAMA3_SPLIT_REGEX)?,
                byte_level_no_regex.into(),
            ])
            .into(),
            PreTokenizerKind::LlamaCppDefault => {
                let mut steps = DEFAULT_PRE_REGEXES
                    .iter()
                    .map(|r| isolated(r))
                    .collect::<Result<Vec<_>, _>>()?;
                steps.push(byte_level_no_regex.into());
                Sequence::new(steps).into()
            }
        })
    }
}

/// The tokenizer description a GGUF file carries, decoded into owned values. Build it with
/// [`GgufVocab::build`]; its fields are public so a caller can inspect or adjust them first
/// (e.g. try another pre-tokenizer).
#[derive(Debug, Clone)]
pub struct GgufVocab {
    /// The file it came from (for error messages).
    pub file: PathBuf,
    /// `tokenizer.ggml.model`.
    pub model: String,
    /// `tokenizer.ggml.pre`, if present.
    pub pre: Option<String>,
    /// Token strings, indexed by id (byte-level spelling, `Ġ` for a space).
    pub tokens: Vec<String>,
    /// One kind per token (all [`GgufTokenType::Normal`] when the key is absent).
    pub token_types: Vec<GgufTokenType>,
    /// BPE merges, highest priority first.
    pub merges: Vec<(String, String)>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub pad_id: Option<u32>,
    /// Extra stop ids (end of turn, end of message).
    pub extra_stop_ids: Vec<u32>,
    /// `tokenizer.ggml.add_bos_token`, or llama.cpp's default for the pre-tokenizer.
    pub add_bos: bool,
    /// `tokenizer.ggml.add_eos_token` (default false).
    pub add_eos: bool,
    pub chat_template: Option<String>,
}

impl GgufVocab {
    /// Reads the tokenizer metadata of `file`; fails for unsupported tokenizer models.
    pub fn from_gguf(file: &GgufFile) -> Result<GgufVocab, TokenizerError> {
        let path = file.path().to_path_buf();
        let bad = |key: &str, detail: String| TokenizerError::BadMetadata {
            file: path.clone(),
            key: key.to_string(),
            detail,
        };
        let model = file.require_str(KEY_MODEL)?.to_string();
        if model != MODEL_GPT2 {
            return Err(TokenizerError::UnsupportedModel {
                file: path,
                key: KEY_MODEL,
                value: model,
            });
        }
        let tokens = file
            .require_array(KEY_TOKENS)?
            .iter()
            .enumerate()
            .map(|(id, v)| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(KEY_TOKENS, format!("entry {id} is not a string")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let token_types = match file.get(KEY_TOKEN_TYPE) {
            None => vec![GgufTokenType::Normal; tokens.len()],
            Some(value) => {
                let items = value.as_array().ok_or_else(|| {
                    bad(
                        KEY_TOKEN_TYPE,
                        format!("expected an array, found {}", value.type_description()),
                    )
                })?;
                if items.len() != tokens.len() {
                    return Err(bad(
                        KEY_TOKEN_TYPE,
                        format!("{} entries for {} tokens", items.len(), tokens.len()),
                    ));
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(id, v)| {
                        v.as_i64().map(GgufTokenType::from_code).ok_or_else(|| {
                            bad(KEY_TOKEN_TYPE, format!("entry {id} is not an integer"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let merges = file
            .require_array(KEY_MERGES)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let text = v
                    .as_str()
                    .ok_or_else(|| bad(KEY_MERGES, format!("entry {i} is not a string")))?;
                let (left, right) = text.split_once(' ').ok_or_else(|| {
                    bad(
                        KEY_MERGES,
                        format!("entry {i} ({text:?}) is not \"left right\""),
                    )
                })?;
                Ok((left.to_string(), right.to_string()))
            })
            .collect::<Result<Vec<_>, TokenizerError>>()?;
        let n_tokens = tokens.len();
        let token_id = |key: &str| -> Result<Option<u32>, TokenizerError> {
            let Some(value) = file.get(key) else {
                return Ok(None);
            };
            let id = value
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| bad(key, format!("not a token id ({value:?})")))?;
            if id as usize >= n_tokens {
                return Err(bad(
                    key,
                    format!("id {id} is outside the vocabulary of {n_tokens}"),
                ));
            }
            Ok(Some(id))
        };
        let bool_key = |key: &str| -> Result<Option<bool>, TokenizerError> {
            match file.get(key) {
                None => Ok(None),
                Some(MetaValue::Bool(b)) => Ok(Some(*b)),
                Some(other) => Err(bad(
                    key,
                    format!("expected a bool, found {}", other.type_description()),
                )),
            }
        };
        let pre = file.get_str(KEY_PRE).map(str::to_string);
        let default_add_bos =
            PreTokenizerKind::from_gguf_name(pre.as_deref()) == Some(PreTokenizerKind::Llama3);
        let mut extra_stop_ids = Vec::new();
        for key in [KEY_EOT_ID, KEY_EOM_ID] {
            extra_stop_ids.extend(token_id(key)?);
        }
        Ok(GgufVocab {
            model,
            pre,
            bos_id: token_id(KEY_BOS_ID)?,
            eos_id: token_id(KEY_EOS_ID)?,
            pad_id: token_id(KEY_PAD_ID)?,
            extra_stop_ids,
            add_bos: bool_key(KEY_ADD_BOS)?.unwrap_or(default_add_bos),
            add_eos: bool_key(KEY_ADD_EOS)?.unwrap_or(false),
            chat_template: file.get_str(KEY_CHAT_TEMPLATE).map(str::to_string),
            tokens,
            token_types,
            merges,
            file: path,
        })
    }

    /// Builds the byte-level BPE tokenizer this vocabulary describes.
    ///
    /// Control tokens become special [`AddedToken`]s and user-defined tokens plain added
    /// tokens, both matched whole and not normalized, so `<|im_start|>` in text encodes to its
    /// id. Normal tokens spelled outside the byte-level alphabet (a converter slip seen in some
    /// files) are respelled byte by byte, as transformers does, so their merges still apply.
    pub fn build(&self) -> Result<TokenizerBundle, TokenizerError> {
        let build_err = |source| TokenizerError::Build {
            file: self.file.clone(),
            source,
        };
        let kind = PreTokenizerKind::from_gguf_name(self.pre.as_deref()).ok_or_else(|| {
            TokenizerError::UnsupportedPreTokenizer {
                file: self.file.clone(),
                key: KEY_PRE,
                value: self.pre.clone().unwrap_or_default(),
                supported: PreTokenizerKind::supported_names(),
            }
        })?;
        let alphabet = ByteLevel::alphabet();
        let mut vocab = Vocab::default();
        let mut added = Vec::new();
        for (id, (token, ty)) in self.tokens.iter().zip(&self.token_types).enumerate() {
            let id = id as u32;
            let spelled = match ty {
                GgufTokenType::Control | GgufTokenType::UserDefined => {
                    let special = *ty == GgufTokenType::Control;
                    added.push(AddedToken::from(token.clone(), special).normalized(false));
                    token.clone()
                }
                _ if token.chars().all(|c| alphabet.contains(&c)) => token.clone(),
                _ => respell_byte_level(token),
            };
            // With duplicate spellings the first id wins, the later ones are unreachable.
            vocab.entry(spelled).or_insert(id);
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, self.merges.clone())
            .ignore_merges(kind.ignore_merges())
            .build()
            .map_err(build_err)?;
        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer.with_pre_tokenizer(Some(kind.build().map_err(build_err)?));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        // Added tokens are looked up in the model vocabulary first, so they keep their ids.
        let (special, plain): (Vec<_>, Vec<_>) = added.into_iter().partition(|t| t.special);
        tokenizer.add_special_tokens(&special);
        tokenizer.add_tokens(&plain);
        let bos = self.bos_id.map(|id| (self.tokens[id as usize].clone(), id));
        let eos = self.eos_id.map(|id| (self.tokens[id as usize].clone(), id));
        if let Some(template) = bos_eos_template(self.add_bos, self.add_eos, bos, eos) {
            tokenizer.with_post_processor(Some(template.map_err(build_err)?));
        }
        let mut stop_ids = Vec::new();
        for id in self.eos_id.iter().chain(&self.extra_stop_ids) {
            if !stop_ids.contains(id) {
                stop_ids.push(*id);
            }
        }
        Ok(TokenizerBundle {
            tokenizer,
            bos_id: self.bos_id,
            eos_id: self.eos_id,
            pad_id: self.pad_id,
            stop_ids,
            chat_template: self.chat_template.clone(),
            add_bos: self.add_bos && self.bos_id.is_some(),
        })
    }
}

/// Spells a UTF-8 string in the byte-level alphabet (`bytes_to_unicode`), one char per byte.
fn respell_byte_level(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for &byte in text.as_bytes() {
        out.push(byte_to_unicode(byte));
    }
    out
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the other 68 bytes
/// to U+0100 onwards in byte order.
fn byte_to_unicode(byte: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(byte) {
        return char::from(byte);
    }
    let rank = (0..byte).filter(|&b| !printable(b)).count() as u32;
    char::from_u32(0x100 + rank).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// A post-processor adding BOS and/or EOS around each sequence, or `None` if neither is added.
fn bos_eos_template(
    add_bos: bool,
    add_eos: bool,
    bos: Option<(String, u32)>,
    eos: Option<(String, u32)>,
) -> Option<Result<TemplateProcessing, tokenizers::Error>> {
    let bos = bos.filter(|_| add_bos);
    let eos = eos.filter(|_| add_eos);
    if bos.is_none() && eos.is_none() {
        return None;
    }
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut specials = Vec::new();
    if let Some((text, id)) = &bos {
        single.push(text.clone());
        pair.push(text.clone());
        specials.push((text.clone(), *id));
    }
    single.push("$A".to_string());
    pair.push("$A".to_string());
    if let Some((text, id)) = &eos {
        single.push(text.clone());
        pair.push(text.clone());
        specials.push((text.clone(), *id));
    }
    if let Some((text, _)) = &bos {
        pair.push(format!("{text}:1"));
    }
    pair.push("$B:1".to_string());
    if let Some((text, _)) = &eos {
        pair.push(format!("{text}:1"));
    }
    Some((|| {
        TemplateProcessing::builder()
            .try_single(single)?
            .try_pair(pair)?
            .special_tokens(specials)
            .build()
            .map_err(tokenizers::Error::from)
    })())
}

/// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.model = "gpt2"`).
pub fn from_gguf(file: &GgufFile) -> Result<TokenizerBundle, TokenizerError> {
    GgufVocab::from_gguf(file)?.build()
}

fn read_json(path: &Path) -> Result<Option<Value>, TokenizerError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TokenizerError::Io {
                file: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| TokenizerError::Json {
            file: path.to_path_buf(),
            source,
        })
}

/// A special token in `tokenizer_config.json`: a string, `{"content": ...}`, or null.
fn config_token<'a>(
    config: &'a Value,
    key: &str,
    path: &Path,
) -> Result<Option<&'a str>, TokenizerError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Object(o)) => match o.get("content") {
            Some(Value::String(s)) => Ok(Some(s)),
            _ => Err(TokenizerError::BadMetadata {
                file: path.to_path_buf(),
                key: key.to_string(),
                detail: "object without a string `content`".to_string(),
            }),
        },
        Some(other) => Err(TokenizerError::BadMetadata {
            file: path.to_path_buf(),
            key: key.to_string(),
            detail: format!("expected a string or {{\"content\": ...}}, found {other}"),
        }),
    }
}

/// Token ids in `generation_config.json`: an integer or a list of integers.
fn config_ids(config: &Value, key: &str, path: &Path) -> Result<Vec<u32>, TokenizerError> {
    let bad = || TokenizerError::BadMetadata {
        file: path.to_path_buf(),
        key: key.to_string(),
        detail: "expected a token id or a list of token ids".to_string(),
    };
    let as_id = |v: &Value| v.as_u64().and_then(|id| u32::try_from(id).ok());
    match config.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|v| as_id(v).ok_or_else(bad)).collect(),
        Some(v) => Ok(vec![as_id(v).ok_or_else(bad)?]),
    }
}

/// The chat template in `tokenizer_config.json`: a string, or a list of named templates of
/// which the one named `default` (else the first) is used.
fn config_chat_template(config: &Value) -> Option<String> {
    match config.get("chat_template")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let named = |name: &str| {
                items
                    .iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
            };
            named("default")
                .or_else(|| items.first())
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .map(str::to_string)
        }
        _ => None,
    }
}

/// Loads a Hugging Face tokenizer directory: `tokenizer.json` (required),
/// `tokenizer_config.json` (special tokens as strings or `{content}`, `add_bos_token`,
/// `chat_template`), `chat_template.jinja` (newer transformers) and `generation_config.json`
/// (`eos_token_id` as an id or a list, `bos_token_id`, `pad_token_id`).
///
/// Special tokens named in `tokenizer_config.json` take precedence over ids in
/// `generation_config.json`; all of the latter's `eos_token_id`s become stop ids. When
/// `add_bos_token` is absent, BOS is taken to be added if the tokenizer's post-processor adds it.
pub fn from_hf_dir(dir: &Path) -> Result<TokenizerBundle, TokenizerError> {
    let tokenizer_path = dir.join(HF_TOKENIZER_JSON);
    if !tokenizer_path.is_file() {
        return Err(TokenizerError::Io {
            file: tokenizer_path,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no tokenizer.json"),
        });
    }
    let tokenizer =
        Tokenizer::from_file(&tokenizer_path).map_err(|source| TokenizerError::Build {
            file: tokenizer_path.clone(),
            source,
        })?;
    let config_path = dir.join(HF_TOKENIZER_CONFIG);
    let config = read_json(&config_path)?.unwrap_or(Value::Null);
    let generation_path = dir.join(HF_GENERATION_CONFIG);
    let generation = read_json(&generation_path)?.unwrap_or(Value::Null);

    let vocab_size = tokenizer.get_vocab_size(true);
    let resolve = |key: &str| -> Result<Option<u32>, TokenizerError> {
        let Some(text) = config_token(&config, key, &config_path)? else {
            return Ok(None);
        };
        tokenizer
            .token_to_id(text)
            .map(Some)
            .ok_or_else(|| TokenizerError::BadMetadata {
                file: config_path.clone(),
                key: key.to_string(),
                detail: format!("token {text:?} is not in {HF_TOKENIZER_JSON}"),
            })
    };
    let checked = |ids: Vec<u32>, key: &str| -> Result<Vec<u32>, TokenizerError> {
        match ids.iter().find(|&&id| id as usize >= vocab_size) {
            Some(id) => Err(TokenizerError::BadMetadata {
                file: generation_path.clone(),
                key: key.to_string(),
                detail: format!("id {id} is outside the vocabulary of {vocab_size}"),
            }),
            None => Ok(ids),
        }
    };
    let generation_eos = checked(
        config_ids(&generation, "eos_token_id", &generation_path)?,
        "eos_token_id",
    )?;
    let generation_bos = checked(
        config_ids(&generation, "bos_token_id", &generation_path)?,
        "bos_token_id",
    )?;
    let generation_pad = checked(
        config_ids(&generation, "pad_token_id", &generation_path)?,
        "pad_token_id",
    )?;

    let bos_id = resolve("bos_token")?.or(generation_bos.first().copied());
    let eos_id = resolve("eos_token")?.or(generation_eos.first().copied());
    let pad_id = resolve("pad_token")?.or(generation_pad.first().copied());
    let mut stop_ids = Vec::new();
    for id in eos_id.iter().chain(&generation_eos) {
        if !stop_ids.contains(id) {
            stop_ids.push(*id);
        }
    }

    let chat_template = match config_chat_template(&config) {
        Some(t) => Some(t),
        None => {
            let jinja = dir.join(HF_CHAT_TEMPLATE_FILE);
            match std::fs::read_to_string(&jinja) {
                Ok(t) => Some(t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => {
                    return Err(TokenizerError::Io {
                        file: jinja,
                        source,
                    });
                }
            }
        }
    };

    let add_bos = match config.get("add_bos_token") {
        Some(Value::Bool(b)) => *b && bos_id.is_some(),
        _ => match bos_id {
            None => false,
            Some(bos) => tokenizer
                .encode("", true)
                .map(|e| e.get_ids().first() == Some(&bos))
                .unwrap_or(false),
        },
    };
    Ok(TokenizerBundle {
        tokenizer,
        bos_id,
        eos_id,
        pad_id,
        stop_ids,
        chat_template,
        add_bos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn byte_to_unicode_matches_gpt2_table() {
        let alphabet = ByteLevel::alphabet();
        let mapped: HashSet<char> = (0..=255u8).map(byte_to_unicode).collect();
        assert_eq!(mapped.len(), 256);
        assert!(mapped.iter().all(|c| alphabet.contains(c)));
        assert_eq!(byte_to_unicode(b' '), 'Ġ');
        assert_eq!(byte_to_unicode(b'\n'), 'Ċ');
        assert_eq!(byte_to_unicode(b'a'), 'a');
        assert_eq!(respell_byte_level("ä"), "Ã¤");
    }

    #[test]
    fn pre_names_follow_llama_cpp() {
        use PreTokenizerKind::*;
        assert_eq!(
            PreTokenizerKind::from_gguf_name(Some("smollm")),
            Some(DigitsThenGpt2)
        );
        assert_eq!(
            PreTokenizerKind::from_gguf_name(Some("llama-bpe")),
            Some(Llama3)
        );
        assert_eq!(PreTokenizerKind::from_gguf_name(Some("gpt2")), Some(Gpt2));
        assert_eq!(
            PreTokenizerKind::from_gguf_name(None),
            Some(LlamaCppDefault)
        );
        assert_eq!(PreTokenizerKind::from_gguf_name(Some("qwen2")), None);
        for kind in [Gpt2, DigitsThenGpt2, Llama3, LlamaCppDefault] {
            assert!(kind.build().is_ok(), "{kind:?} regexes compile");
        }
    }
}
