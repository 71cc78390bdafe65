//! GGUF reader: memory-maps a GGUF v2/v3 file, parses its metadata and tensor table, and
//! dequantizes one tensor at a time to `f32`.
//!
//! # Layout
//!
//! A GGUF file is a little-endian header (magic, version, tensor count, key-value count),
//! the metadata key-values, the tensor infos, padding up to `general.alignment` (default
//! [`DEFAULT_ALIGNMENT`]), then the tensor data section. Every tensor offset is relative to
//! the start of that data section.
//!
//! Tensor dims are kept in GGUF order: `dims[0]` is the fastest-varying (contiguous)
//! dimension. The stored bytes are therefore already row-major for the *reversed* dims, so
//! [`GgufFile::dequantize`] returns a flat buffer whose shape is [`TensorInfo::shape`]
//! (`dims` reversed): a 2-D weight with `dims = [cols, rows]` comes back as the PyTorch /
//! Hugging Face `[rows, cols]` matrix.
//!
//! Quantized blocks run along `dims[0]`, so `dims[0]` must be a multiple of the type's
//! block size.
//!
//! llama.cpp's converter permutes the rows of `attn_q.weight` and `attn_k.weight` (and their
//! biases) into its interleaved rotary layout. This module returns every tensor exactly as
//! stored; undoing that permutation is the model loader's job.
//!
//! # Robustness
//!
//! Parsing never panics on bad bytes: every count and length is bounded by the bytes left in
//! the file before anything is allocated, array nesting is capped, sizes use checked
//! arithmetic, and every tensor's byte range is checked against the file size at open time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use rayon::prelude::*;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// GGUF versions this reader understands (v1 used 32-bit counts and is not supported).
pub const SUPPORTED_VERSIONS: [u32; 2] = [2, 3];
/// Alignment of the data section and of tensor offsets when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Metadata key that overrides [`DEFAULT_ALIGNMENT`].
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// Most dimensions a ggml tensor can have (`GGML_MAX_DIMS`).
pub const GGML_MAX_DIMS: u32 = 4;
/// Deepest nesting of array values accepted (real files use at most one level).
const MAX_ARRAY_NESTING: usize = 8;
/// Smallest possible encoding of one key-value: empty key (8-byte length), type id, one byte.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest possible encoding of one tensor info: empty name, `n_dims`, type id, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;
/// Blocks dequantized per parallel task.
const BLOCKS_PER_TASK: usize = 256;
/// Elements in one K-quant super-block (`QK_K`).
const QK_K: usize = 256;
/// Elements in one legacy quant block (`QK4_0`, `QK8_0`, ...).
const QK: usize = 32;

/// Errors from reading a GGUF file. Every variant names the file, and the tensor or key
/// where one is involved.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or mapped.
    #[error("{}: cannot read GGUF file: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with `GGUF`.
    #[error("{}: not a GGUF file (magic bytes {found:02x?}, expected \"GGUF\")", file.display())]
    BadMagic { file: PathBuf, found: Vec<u8> },
    /// The header's version is not in [`SUPPORTED_VERSIONS`].
    #[error("{}: unsupported GGUF version {version} (supported: 2, 3)", file.display())]
    UnsupportedVersion { file: PathBuf, version: u32 },
    /// The file ends (or a count claims more bytes than remain) while reading `what`.
    #[error("{}: truncated or corrupt while reading {what} at byte {offset}", file.display())]
    Truncated {
        file: PathBuf,
        what: String,
        offset: u64,
    },
    /// A string is not valid UTF-8.
    #[error("{}: {what} at byte {offset} is not valid UTF-8", file.display())]
    InvalidUtf8 {
        file: PathBuf,
        what: String,
        offset: u64,
    },
    /// A metadata value has a type id outside the GGUF value types.
    #[error("{}: metadata key `{key}` has unknown value type {type_id}", file.display())]
    BadValueType {
        file: PathBuf,
        key: String,
        type_id: u32,
    },
    /// Arrays nested deeper than the reader accepts.
    #[error("{}: metadata key `{key}` nests arrays deeper than {MAX_ARRAY_NESTING}", file.display())]
    NestingTooDeep { file: PathBuf, key: String },
    /// The same metadata key appears twice.
    #[error("{}: duplicate metadata key `{key}`", file.display())]
    DuplicateKey { file: PathBuf, key: String },
    /// The same tensor name appears twice.
    #[error("{}: duplicate tensor `{tensor}`", file.display())]
    DuplicateTensor { file: PathBuf, tensor: String },
    /// `general.alignment` is zero or not a power of two.
    #[error("{}: `{ALIGNMENT_KEY}` must be a power of two (got {value})", file.display())]
    BadAlignment { file: PathBuf, value: u64 },
    /// A tensor's data range does not lie within the file.
    #[error(
        "{}: tensor `{tensor}` data (offset {offset}, {len} bytes) lies outside the file ({file_len} bytes)",
        file.display()
    )]
    TensorOutOfBounds {
        file: PathBuf,
        tensor: String,
        offset: u64,
        len: u64,
        file_len: u64,
    },
    /// A required metadata key is absent.
    #[error("{}: missing metadata key `{key}`", file.display())]
    MissingKey { file: PathBuf, key: String },
    /// A metadata key is present but holds the wrong kind of value.
    #[error("{}: metadata key `{key}` should be {expected}, found {found}", file.display())]
    WrongType {
        file: PathBuf,
        key: String,
        expected: &'static str,
        found: String,
    },
    /// No tensor of that name.
    #[error("{}: no tensor named `{tensor}`", file.display())]
    TensorNotFound { file: PathBuf, tensor: String },
    /// The tensor's type cannot be dequantized by this reader.
    #[error("{}: tensor `{tensor}` has unsupported type {ggml_type}", file.display())]
    UnsupportedType {
        file: PathBuf,
        tensor: String,
        ggml_type: GgmlType,
    },
    /// A tensor's dims are invalid (too many, overflowing, not a multiple of the block size).
    #[error("{}: tensor `{tensor}` has invalid shape: {detail}", file.display())]
    ShapeMismatch {
        file: PathBuf,
        tensor: String,
        detail: String,
    },
}

/// The type of a metadata value, as encoded in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    /// Decodes a GGUF value type id.
    pub fn from_id(id: u32) -> Option<ValueType> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// Fewest bytes one value of this type can occupy in the file.
    fn min_encoded_bytes(self) -> u64 {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => 4 + 8,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        };
        f.write_str(name)
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// An array; `elem_type` is kept so that empty arrays still say what they hold.
    Array {
        elem_type: ValueType,
        items: Vec<MetaValue>,
    },
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    /// The encoded type of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::String(_) => ValueType::String,
            MetaValue::Array { .. } => ValueType::Array,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F64(_) => ValueType::F64,
        }
    }

    /// Any integer value that is non-negative, widened to `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value that fits in `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::I64(v) => Some(v),
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// An `f32` value, or an `f64` value narrowed to `f32`.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            MetaValue::F32(v) => Some(v),
            MetaValue::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    /// A boolean value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// A string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The items of an array value.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array { items, .. } => Some(items),
            _ => None,
        }
    }

    /// Short description for error messages, e.g. `u32` or `array of string`.
    pub fn type_description(&self) -> String {
        match self {
            MetaValue::Array { elem_type, .. } => format!("array of {elem_type}"),
            other => other.value_type().to_string(),
        }
    }
}

/// A ggml tensor element type.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    /// Any other ggml type id (IQ quants, Q8_1, integer types, ...), kept by its id.
    Other(u32),
}

impl GgmlType {
    /// Decodes a ggml type id (`enum ggml_type`).
    pub fn from_id(id: u32) -> GgmlType {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            10 => GgmlType::Q2_K,
            11 => GgmlType::Q3_K,
            12 => GgmlType::Q4_K,
            13 => GgmlType::Q5_K,
            14 => GgmlType::Q6_K,
            15 => GgmlType::Q8_K,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q2_K => 10,
            GgmlType::Q3_K => 11,
            GgmlType::Q4_K => 12,
            GgmlType::Q5_K => 13,
            GgmlType::Q6_K => 14,
            GgmlType::Q8_K => 15,
            GgmlType::BF16 => 30,
            GgmlType::Other(id) => id,
        }
    }

    /// `(elements per block, bytes per block)`, or `None` for types whose layout this
    /// reader does not know.
    pub fn block_layout(self) -> Option<(u64, u64)> {
        Some(match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q5_0 => (32, 22),
            GgmlType::Q5_1 => (32, 24),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q2_K => (256, 84),
            GgmlType::Q3_K => (256, 110),
            GgmlType::Q4_K => (256, 144),
            GgmlType::Q5_K => (256, 176),
            GgmlType::Q6_K => (256, 210),
            GgmlType::Q8_K => (256, 292),
            GgmlType::Other(_) => return None,
        })
    }

    /// Whether [`GgufFile::dequantize`] can decode this type.
    pub fn can_dequantize(self) -> bool {
        block_decoder(self).is_some()
            || matches!(self, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GgmlType::Other(id) => write!(f, "ggml type {id}"),
            named => fmt::Debug::fmt(named, f),
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dims in GGUF order: `dims[0]` is the fastest-varying dimension.
    pub dims: Vec<u64>,
    /// Element type.
    pub dtype: GgmlType,
    /// Byte offset of the data, relative to the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (validated not to overflow when the file was opened).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |acc, &d| acc.saturating_mul(d))
    }

    /// Row-major shape of the dequantized data: `dims` reversed (PyTorch order).
    pub fn shape(&self) -> Vec<usize> {
        self.dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect()
    }

    /// Size of the stored data in bytes, when the type's layout is known.
    pub fn byte_len(&self) -> Option<u64> {
        let (block_elems, block_bytes) = self.dtype.block_layout()?;
        (self.n_elements() / block_elems).checked_mul(block_bytes)
    }
}

/// An opened, memory-mapped GGUF file with its parsed metadata and tensor table.
pub struct GgufFile {
    path: PathBuf,
    mmap: Option<Mmap>,
    version: u32,
    alignment: u64,
    data_start: u64,
    metadata: BTreeMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Opens and memory-maps `path`, parsing the header, metadata and tensor table and
    /// checking that every tensor's data lies within the file.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let io_err = |source| GgufError::Io {
            file: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        // Mapping a zero-length file fails on some platforms; an empty file is simply
        // truncated.
        let mmap = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only and owned by the returned value. Like every
            // mmap-based model loader we assume the file is not truncated or rewritten by
            // another process while it is open; bounds are checked against `len` anyway.
            Some(unsafe { Mmap::map(&file) }.map_err(io_err)?)
        };
        let bytes: &[u8] = mmap.as_deref().unwrap_or(&[]);
        let parsed = parse(path, bytes)?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            mmap,
            version: parsed.version,
            alignment: parsed.alignment,
            data_start: parsed.data_start,
            metadata: parsed.metadata,
            by_name: parsed
                .tensors
                .iter()
                .enumerate()
                .map(|(i, t)| (t.name.clone(), i))
                .collect(),
            tensors: parsed.tensors,
        })
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of the data section (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute byte offset of the tensor data section.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    /// All metadata key-values.
    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.metadata
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// A string value, `None` when absent or not a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// A non-negative integer value of any width, `None` when absent or not such an integer.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }

    /// An integer value of any width that fits `i64`.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key)?.as_i64()
    }

    /// An `f32` (or `f64`) value.
    pub fn get_f32(&self, key: &str) -> Option<f32> {
        self.get(key)?.as_f32()
    }

    /// A boolean value.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    /// The items of an array value.
    pub fn get_array(&self, key: &str) -> Option<&[MetaValue]> {
        self.get(key)?.as_array()
    }

    /// Looks `key` up and converts it, telling a missing key from a wrongly typed one.
    fn require<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        convert: impl FnOnce(&'a MetaValue) -> Option<T>,
    ) -> Result<T, GgufError> {
        let value = self.get(key).ok_or_else(|| GgufError::MissingKey {
            file: self.path.clone(),
            key: key.to_string(),
        })?;
        convert(value).ok_or_else(|| GgufError::WrongType {
            file: self.path.clone(),
            key: key.to_string(),
            expected,
            found: value.type_description(),
        })
    }

    /// Like [`get_str`](Self::get_str), but a missing key is [`GgufError::MissingKey`] and a
    /// wrongly typed one [`GgufError::WrongType`].
    pub fn require_str(&self, key: &str) -> Result<&str, GgufError> {
        self.require(key, "a string", MetaValue::as_str)
    }

    /// Like [`get_u64`](Self::get_u64), with errors for missing or wrongly typed keys.
    pub fn require_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.require(key, "a non-negative integer", MetaValue::as_u64)
    }

    /// Like [`get_f32`](Self::get_f32), with errors for missing or wrongly typed keys.
    pub fn require_f32(&self, key: &str) -> Result<f32, GgufError> {
        self.require(key, "a float", MetaValue::as_f32)
    }

    /// Like [`get_bool`](Self::get_bool), with errors for missing or wrongly typed keys.
    pub fn require_bool(&self, key: &str) -> Result<bool, GgufError> {
        self.require(key, "a bool", MetaValue::as_bool)
    }

    /// Like [`get_array`](Self::get_array), with errors for missing or wrongly typed keys.
    pub fn require_array(&self, key: &str) -> Result<&[MetaValue], GgufError> {
        self.require(key, "an array", MetaValue::as_array)
    }

    /// The tensor table, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// A tensor's info by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    fn require_tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor(name).ok_or_else(|| GgufError::TensorNotFound {
            file: self.path.clone(),
            tensor: name.to_string(),
        })
    }

    fn unsupported(&self, info: &TensorInfo) -> GgufError {
        GgufError::UnsupportedType {
            file: self.path.clone(),
            tensor: info.name.clone(),
            ggml_type: info.dtype,
        }
    }

    /// The raw stored bytes of a tensor (quantized blocks as in the file).
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8], GgufError> {
        let info = self.require_tensor(name)?;
        let len = info.byte_len().ok_or_else(|| self.unsupported(info))?;
        let bytes: &[u8] = self.mmap.as_deref().unwrap_or(&[]);
        let out_of_bounds = || GgufError::TensorOutOfBounds {
            file: self.path.clone(),
            tensor: info.name.clone(),
            offset: info.offset,
            len,
            file_len: bytes.len() as u64,
        };
        let start = self
            .data_start
            .checked_add(info.offset)
            .ok_or_else(out_of_bounds)?;
        let end = start.checked_add(len).ok_or_else(out_of_bounds)?;
        let start = usize::try_from(start).map_err(|_| out_of_bounds())?;
        let end = usize::try_from(end).map_err(|_| out_of_bounds())?;
        bytes.get(start..end).ok_or_else(out_of_bounds)
    }

    /// Dequantizes one tensor to `f32`, row-major with shape [`TensorInfo::shape`] (dims
    /// reversed). Supports F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K,
    /// Q5_K and Q6_K; other types give [`GgufError::UnsupportedType`]. Results are
    /// bit-identical to the `gguf` Python package's `gguf.quants.dequantize`.
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>, GgufError> {
        let info = self.require_tensor(name)?;
        if !info.dtype.can_dequantize() {
            return Err(self.unsupported(info));
        }
        let bytes = self.tensor_bytes(name)?;
        let n = usize::try_from(info.n_elements()).map_err(|_| GgufError::ShapeMismatch {
            file: self.path.clone(),
            tensor: info.name.clone(),
            detail: "too many elements for this platform".to_string(),
        })?;
        let mut out = vec![0f32; n];
        decode_into(info.dtype, bytes, &mut out);
        Ok(out)
    }
}

/// What [`parse`] extracts from the bytes.
struct Parsed {
    version: u32,
    alignment: u64,
    data_start: u64,
    metadata: BTreeMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
}

/// A bounds-checked little-endian reader over the mapped bytes.
struct Cursor<'a> {
    file: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn truncated(&self, what: &str) -> GgufError {
        GgufError::Truncated {
            file: self.file.to_path_buf(),
            what: what.to_string(),
            offset: self.pos as u64,
        }
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(self.truncated(what));
        }
        // `n <= remaining` so it fits in usize and the slice is in bounds.
        let n = n as usize;
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let slice = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads a length that claims `count` items of at least `min_item_bytes` each, and
    /// rejects it if the rest of the file cannot hold them.
    fn count(&mut self, min_item_bytes: u64, what: &str) -> Result<u64, GgufError> {
        let start = self.pos;
        let count = self.u64(what)?;
        if count.saturating_mul(min_item_bytes) > self.remaining() {
            self.pos = start;
            return Err(self.truncated(&format!("{what} (claims {count} items)")));
        }
        Ok(count)
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.count(1, what)?;
        let at = self.pos as u64;
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| GgufError::InvalidUtf8 {
            file: self.file.to_path_buf(),
            what: what.to_string(),
            offset: at,
        })
    }

    fn value(&mut self, ty: ValueType, key: &str, depth: usize) -> Result<MetaValue, GgufError> {
        Ok(match ty {
            ValueType::U8 => MetaValue::U8(u8::from_le_bytes(self.array(key)?)),
            ValueType::I8 => MetaValue::I8(i8::from_le_bytes(self.array(key)?)),
            ValueType::U16 => MetaValue::U16(u16::from_le_bytes(self.array(key)?)),
            ValueType::I16 => MetaValue::I16(i16::from_le_bytes(self.array(key)?)),
            ValueType::U32 => MetaValue::U32(u32::from_le_bytes(self.array(key)?)),
            ValueType::I32 => MetaValue::I32(i32::from_le_bytes(self.array(key)?)),
            ValueType::F32 => MetaValue::F32(f32::from_le_bytes(self.array(key)?)),
            ValueType::U64 => MetaValue::U64(u64::from_le_bytes(self.array(key)?)),
            ValueType::I64 => MetaValue::I64(i64::from_le_bytes(self.array(key)?)),
            ValueType::F64 => MetaValue::F64(f64::from_le_bytes(self.array(key)?)),
            ValueType::Bool => {
                let [b] = self.array::<1>(key)?;
                MetaValue::Bool(b != 0)
            }
            ValueType::String => MetaValue::String(self.string(key)?),
            ValueType::Array => {
                if depth >= MAX_ARRAY_NESTING {
                    return Err(GgufError::NestingTooDeep {
                        file: self.file.to_path_buf(),
                        key: key.to_string(),
                    });
                }
                let type_id = self.u32(key)?;
                let elem_type =
                    ValueType::from_id(type_id).ok_or_else(|| GgufError::BadValueType {
                        file: self.file.to_path_buf(),
                        key: key.to_string(),
                        type_id,
                    })?;
                let count = self.count(elem_type.min_encoded_bytes(), key)?;
                // `count` is bounded by the bytes left, so this allocation is too.
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(elem_type, key, depth + 1)?);
                }
                MetaValue::Array { elem_type, items }
            }
        })
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed, GgufError> {
    let mut cur = Cursor {
        file: path,
        bytes,
        pos: 0,
    };
    let magic = cur.take(GGUF_MAGIC.len() as u64, "magic").map_err(|e| {
        if bytes.is_empty() || GGUF_MAGIC.starts_with(bytes) {
            e
        } else {
            GgufError::BadMagic {
                file: path.to_path_buf(),
                found: bytes.to_vec(),
            }
        }
    })?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::BadMagic {
            file: path.to_path_buf(),
            found: magic.to_vec(),
        });
    }
    let version = cur.u32("version")?;
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(GgufError::UnsupportedVersion {
            file: path.to_path_buf(),
            version,
        });
    }
    let tensor_count = cur.u64("tensor count")?;
    let kv_count = cur.count(MIN_KV_BYTES, "metadata key-value count")?;

    let mut metadata = BTreeMap::new();
    for _ in 0..kv_count {
        let key = cur.string("metadata key")?;
        let type_id = cur.u32(&key)?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::BadValueType {
            file: path.to_path_buf(),
            key: key.clone(),
            type_id,
        })?;
        let value = cur.value(ty, &key, 0)?;
        if metadata.contains_key(&key) {
            return Err(GgufError::DuplicateKey {
                file: path.to_path_buf(),
                key,
            });
        }
        metadata.insert(key, value);
    }

    let alignment = match metadata.get(ALIGNMENT_KEY) {
        None => DEFAULT_ALIGNMENT,
        Some(v) => {
            let value = v.as_u64().ok_or_else(|| GgufError::WrongType {
                file: path.to_path_buf(),
                key: ALIGNMENT_KEY.to_string(),
                expected: "an unsigned integer",
                found: v.type_description(),
            })?;
            if !value.is_power_of_two() {
                return Err(GgufError::BadAlignment {
                    file: path.to_path_buf(),
                    value,
                });
            }
            value
        }
    };

    if tensor_count.saturating_mul(MIN_TENSOR_INFO_BYTES) > cur.remaining() {
        return Err(cur.truncated(&format!("tensor infos (claims {tensor_count} tensors)")));
    }
    let mut tensors = Vec::with_capacity(tensor_count as usize);
    let mut seen = HashSet::with_capacity(tensor_count as usize);
    for _ in 0..tensor_count {
        let name = cur.string("tensor name")?;
        let shape_err = |detail: String| GgufError::ShapeMismatch {
            file: path.to_path_buf(),
            tensor: name.clone(),
            detail,
        };
        let n_dims = cur.u32(&format!("dims of tensor `{name}`"))?;
        if n_dims > GGML_MAX_DIMS {
            return Err(shape_err(format!(
                "{n_dims} dims (at most {GGML_MAX_DIMS})"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(cur.u64(&format!("dims of tensor `{name}`"))?);
        }
        let dtype = GgmlType::from_id(cur.u32(&format!("type of tensor `{name}`"))?);
        let offset = cur.u64(&format!("offset of tensor `{name}`"))?;
        dims.iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| shape_err(format!("element count of {dims:?} overflows")))?;
        if let Some((block_elems, _)) = dtype.block_layout() {
            let row = dims.first().copied().unwrap_or(1);
            if row % block_elems != 0 {
                return Err(shape_err(format!(
                    "dims[0] = {row} is not a multiple of the {dtype} block size {block_elems}"
                )));
            }
        }
        if !seen.insert(name.clone()) {
            return Err(GgufError::DuplicateTensor {
                file: path.to_path_buf(),
                tensor: name,
            });
        }
        tensors.push(TensorInfo {
            name,
            dims,
            dtype,
            offset,
        });
    }

    let header_end = cur.pos as u64;
    let data_start = header_end
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| cur.truncated("padding before the data section"))?;
    let file_len = bytes.len() as u64;
    for t in &tensors {
        let Some(len) = t.byte_len() else { continue };
        let in_bounds = data_start
            .checked_add(t.offset)
            .and_then(|start| start.checked_add(len))
            .is_some_and(|end| end <= file_len);
        if !in_bounds {
            return Err(GgufError::TensorOutOfBounds {
                file: path.to_path_buf(),
                tensor: t.name.clone(),
                offset: t.offset,
                len,
                file_len,
            });
        }
    }
    Ok(Parsed {
        version,
        alignment,
        data_start,
        metadata,
        tensors,
    })
}

// ---------------------------------------------------------------------------------------
// Dequantization. Each block decoder mirrors `gguf.quants` (gguf-py) operation by operation
// in f32 (the same multiplies and adds in the same order, no fused multiply-add), so the
// results are bit-identical to the reference.
// ---------------------------------------------------------------------------------------

/// Decodes one block of `bytes` (exactly one block's bytes) into `out` (one block's elements).
type BlockDecoder = fn(&[u8], &mut [f32]);

fn block_decoder(dtype: GgmlType) -> Option<BlockDecoder> {
    Some(match dtype {
        GgmlType::Q4_0 => decode_q4_0,
        GgmlType::Q4_1 => decode_q4_1,
        GgmlType::Q5_0 => decode_q5_0,
        GgmlType::Q5_1 => decode_q5_1,
        GgmlType::Q8_0 => decode_q8_0,
        GgmlType::Q2_K => decode_q2_k,
        GgmlType::Q3_K => decode_q3_k,
        GgmlType::Q4_K => decode_q4_k,
        GgmlType::Q5_K => decode_q5_k,
        GgmlType::Q6_K => decode_q6_k,
        _ => return None,
    })
}

/// Decodes `bytes` of type `dtype` into `out`; the caller has checked that the lengths
/// match the type's block layout. Unsupported types leave `out` untouched.
fn decode_into(dtype: GgmlType, bytes: &[u8], out: &mut [f32]) {
    const ELEMS_PER_TASK: usize = 1 << 16;
    match dtype {
        GgmlType::F32 => out
            .par_chunks_mut(ELEMS_PER_TASK)
            .zip(bytes.par_chunks(ELEMS_PER_TASK * 4))
            .for_each(|(o, b)| {
                for (v, c) in o.iter_mut().zip(b.chunks_exact(4)) {
                    *v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }),
        GgmlType::F16 => out
            .par_chunks_mut(ELEMS_PER_TASK)
            .zip(bytes.par_chunks(ELEMS_PER_TASK * 2))
            .for_each(|(o, b)| {
                for (v, c) in o.iter_mut().zip(b.chunks_exact(2)) {
                    *v = f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }),
        GgmlType::BF16 => out
            .par_chunks_mut(ELEMS_PER_TASK)
            .zip(bytes.par_chunks(ELEMS_PER_TASK * 2))
            .for_each(|(o, b)| {
                for (v, c) in o.iter_mut().zip(b.chunks_exact(2)) {
                    *v = bf16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }),
        other => {
            let (Some(decode), Some((block_elems, block_bytes))) =
                (block_decoder(other), other.block_layout())
            else {
                return;
            };
            let (block_elems, block_bytes) = (block_elems as usize, block_bytes as usize);
            out.par_chunks_mut(block_elems * BLOCKS_PER_TASK)
                .zip(bytes.par_chunks(block_bytes * BLOCKS_PER_TASK))
                .for_each(|(o, b)| {
                    for (ob, bb) in o
                        .chunks_exact_mut(block_elems)
                        .zip(b.chunks_exact(block_bytes))
                    {
                        decode(bb, ob);
                    }
                });
        }
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Q4_0: f16 scale `d`, 16 bytes of nibbles; element `j` is the low nibble of byte `j`,
/// element `j + 16` the high nibble; value `d * (q - 8)`.
fn decode_q4_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..2 + QK / 2];
    for (j, &q) in qs.iter().enumerate() {
        out[j] = d * f32::from((q & 0x0F) as i8 - 8);
        out[j + QK / 2] = d * f32::from((q >> 4) as i8 - 8);
    }
}

/// Q4_1: f16 scale `d`, f16 min `m`, nibbles as Q4_0; value `d * q + m`.
fn decode_q4_1(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..4 + QK / 2];
    for (j, &q) in qs.iter().enumerate() {
        out[j] = d * f32::from(q & 0x0F) + m;
        out[j + QK / 2] = d * f32::from(q >> 4) + m;
    }
}

/// Fifth bits of a Q5_0/Q5_1 block: bit `j` of a little-endian u32.
fn q5_high_bits(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Q5_0: f16 `d`, 32 high bits, 16 bytes of nibbles; value `d * (q - 16)`.
fn decode_q5_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = q5_high_bits(b, 2);
    let qs = &b[6..6 + QK / 2];
    for (j, v) in out.iter_mut().enumerate().take(QK) {
        let low = if j < QK / 2 {
            qs[j] & 0x0F
        } else {
            qs[j - QK / 2] >> 4
        };
        let high = ((qh >> j) & 1) as u8;
        *v = d * f32::from((low | (high << 4)) as i8 - 16);
    }
}

/// Q5_1: f16 `d`, f16 `m`, 32 high bits, nibbles; value `d * q + m`.
fn decode_q5_1(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = q5_high_bits(b, 4);
    let qs = &b[8..8 + QK / 2];
    for (j, v) in out.iter_mut().enumerate().take(QK) {
        let low = if j < QK / 2 {
            qs[j] & 0x0F
        } else {
            qs[j - QK / 2] >> 4
        };
        let high = ((qh >> j) & 1) as u8;
        *v = d * f32::from(low | (high << 4)) + m;
    }
}

/// Q8_0: f16 `d`, 32 signed bytes; value `q * d`.
fn decode_q8_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for (v, &q) in out.iter_mut().zip(&b[2..2 + QK]) {
        *v = f32::from(q as i8) * d;
    }
}

/// Q2_K: 16 scale bytes (low nibble scale, high nibble min), 64 bytes of 2-bit quants,
/// f16 `d`, f16 `dmin`; value `(d * sc) * q - dmin * m` per 16-element group.
fn decode_q2_k(b: &[u8], out: &mut [f32]) {
    let scales = &b[0..QK_K / 16];
    let qs = &b[QK_K / 16..QK_K / 16 + QK_K / 4];
    let d = f16_at(b, QK_K / 16 + QK_K / 4);
    let dmin = f16_at(b, QK_K / 16 + QK_K / 4 + 2);
    for (e, v) in out.iter_mut().enumerate().take(QK_K) {
        let (half, shift, i) = (e / 128, (e % 128) / 32, e % 32);
        let q = (qs[half * 32 + i] >> (2 * shift)) & 3;
        let sc = scales[e / 16];
        let dl = d * f32::from(sc & 0x0F);
        let ml = dmin * f32::from(sc >> 4);
        *v = dl * f32::from(q) - ml;
    }
}

/// Q3_K: 32 bytes of high-bit masks, 64 bytes of 2-bit quants, 12 bytes of packed 6-bit
/// scales, f16 `d`; value `(d * (sc - 32)) * q` per 16-element group, `q` in -4..=3.
fn decode_q3_k(b: &[u8], out: &mut [f32]) {
    let hmask = &b[0..QK_K / 8];
    let qs = &b[QK_K / 8..QK_K / 8 + QK_K / 4];
    let sc = &b[QK_K / 8 + QK_K / 4..QK_K / 8 + QK_K / 4 + 12];
    let d = f16_at(b, QK_K / 8 + QK_K / 4 + 12);
    let mut dl = [0f32; QK_K / 16];
    for (k, dl) in dl.iter_mut().enumerate() {
        let low = if k < 8 { sc[k] & 0x0F } else { sc[k - 8] >> 4 };
        let high = (sc[8 + k % 4] >> (2 * (k / 4))) & 3;
        *dl = d * f32::from((low | (high << 4)) as i8 - 32);
    }
    for (e, v) in out.iter_mut().enumerate().take(QK_K) {
        let (half, shift, i) = (e / 128, (e % 128) / 32, e % 32);
        let low = ((qs[half * 32 + i] >> (2 * shift)) & 3) as i8;
        let high_clear = ((hmask[e % 32] >> (e / 32)) & 1) ^ 1;
        let q = low - ((high_clear << 2) as i8);
        *v = dl[e / 16] * f32::from(q);
    }
}

/// Unpacks the 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes of a
/// Q4_K / Q5_K block (`get_scale_min_k4` in ggml).
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 0x3F, s[j + 4] & 0x3F)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Q4_K: f16 `d`, f16 `dmin`, 12 scale bytes, 128 bytes of nibbles; eight 32-element
/// sub-blocks; value `(d * sc) * q - dmin * m`.
fn decode_q4_k(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..16 + QK_K / 2];
    for (j, sub) in out.chunks_exact_mut(32).enumerate().take(8) {
        let (sc, m) = scale_min_k4(j, scales);
        let dj = d * f32::from(sc);
        let mj = dmin * f32::from(m);
        let shift = 4 * (j % 2);
        for (i, v) in sub.iter_mut().enumerate() {
            let q = (qs[(j / 2) * 32 + i] >> shift) & 0x0F;
            *v = dj * f32::from(q) - mj;
        }
    }
}

/// Q5_K: as Q4_K plus 32 bytes of fifth bits (bit `j` of byte `i` for element `32 j + i`).
fn decode_q5_k(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..16 + QK_K / 8];
    let qs = &b[16 + QK_K / 8..16 + QK_K / 8 + QK_K / 2];
    for (j, sub) in out.chunks_exact_mut(32).enumerate().take(8) {
        let (sc, m) = scale_min_k4(j, scales);
        let dj = d * f32::from(sc);
        let mj = dmin * f32::from(m);
        let shift = 4 * (j % 2);
        for (i, v) in sub.iter_mut().enumerate() {
            let low = (qs[(j / 2) * 32 + i] >> shift) & 0x0F;
            let high = (qh[i] >> j) & 1;
            *v = dj * f32::from(low | (high << 4)) - mj;
        }
    }
}

/// Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 signed scales, f16 `d`;
/// value `(d * sc) * (q - 32)` per 16-element group.
fn decode_q6_k(b: &[u8], out: &mut [f32]) {
    let ql = &b[0..QK_K / 2];
    let qh = &b[QK_K / 2..QK_K / 2 + QK_K / 4];
    let scales = &b[QK_K / 2 + QK_K / 4..QK_K / 2 + QK_K / 4 + QK_K / 16];
    let d = f16_at(b, QK_K / 2 + QK_K / 4 + QK_K / 16);
    for (e, v) in out.iter_mut().enumerate().take(QK_K) {
        let (half, r) = (e / 128, e % 128);
        let low = (ql[half * 64 + r % 64] >> (4 * (r / 64))) & 0x0F;
        let high = (qh[half * 32 + r % 32] >> (2 * (r / 32))) & 3;
        let q = (low | (high << 4)) as i8 - 32;
        let dl = d * f32::from(scales[e / 16] as i8);
        *v = dl * f32::from(q);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u32, tensors: u64, kvs: u64) -> Vec<u8> {
        let mut b = GGUF_MAGIC.to_vec();
        b.extend(version.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(kvs.to_le_bytes());
        b
    }

    fn parse_bytes(b: &[u8]) -> Result<Parsed, GgufError> {
        parse(Path::new("mem.gguf"), b)
    }

    #[test]
    fn empty_file_is_truncated_and_wrong_magic_is_bad_magic() {
        assert!(matches!(parse_bytes(b""), Err(GgufError::Truncated { .. })));
        assert!(matches!(
            parse_bytes(b"GG"),
            Err(GgufError::Truncated { .. })
        ));
        assert!(matches!(
            parse_bytes(b"PK\x03\x04rest"),
            Err(GgufError::BadMagic { .. })
        ));
        assert!(matches!(
            parse_bytes(b"ZZ"),
            Err(GgufError::BadMagic { .. })
        ));
    }

    #[test]
    fn version_1_is_rejected() {
        let b = header(1, 0, 0);
        assert!(matches!(
            parse_bytes(&b),
            Err(GgufError::UnsupportedVersion { version: 1, .. })
        ));
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let b = header(3, u64::MAX, u64::MAX);
        assert!(matches!(parse_bytes(&b), Err(GgufError::Truncated { .. })));
        let mut b = header(3, u64::MAX, 1);
        b.extend(1u64.to_le_bytes());
        b.push(b'k');
        b.extend(9u32.to_le_bytes()); // array
        b.extend(0u32.to_le_bytes()); // of u8
        b.extend(u64::MAX.to_le_bytes());
        let err = parse_bytes(&b).err();
        assert!(matches!(err, Some(GgufError::Truncated { .. })), "{err:?}");
    }

    #[test]
    fn deep_array_nesting_is_an_error_not_a_stack_overflow() {
        let mut b = header(3, 0, 1);
        b.extend(1u64.to_le_bytes());
        b.push(b'k');
        b.extend(9u32.to_le_bytes());
        for _ in 0..10_000 {
            b.extend(9u32.to_le_bytes());
            b.extend(1u64.to_le_bytes());
        }
        assert!(matches!(
            parse_bytes(&b),
            Err(GgufError::NestingTooDeep { .. })
        ));
    }

    #[test]
    fn empty_tensor_table_parses_with_default_alignment() {
        let mut b = header(2, 0, 1);
        b.extend(4u64.to_le_bytes());
        b.extend(b"name");
        b.extend(8u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(b"hi");
        let parsed = parse_bytes(&b).expect("valid header");
        assert_eq!(parsed.alignment, DEFAULT_ALIGNMENT);
        assert_eq!(parsed.metadata["name"].as_str(), Some("hi"));
        assert_eq!(parsed.data_start, (b.len() as u64).next_multiple_of(32));
    }

    #[test]
    fn q4_0_block_decodes_nibbles_in_ggml_order() {
        let mut block = vec![0u8; 18];
        block[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        block[2] = 0x9F; // element 0: 15 - 8 = 7, element 16: 9 - 8 = 1
        let mut out = [0f32; 32];
        decode_q4_0(&block, &mut out);
        assert_eq!(out[0], 3.5);
        assert_eq!(out[16], 0.5);
        assert_eq!(out[1], -4.0);
    }
}
