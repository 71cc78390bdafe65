//! Shared helpers: the real model through the product's resolver, fixture paths, decoding.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use workbench::model::source;

/// Environment variable that may point at a local copy of the default GGUF.
pub const REAL_GGUF_ENV: &str = "WORKBENCH_TEST_GGUF";

/// The default model (SmolLM2-135M-Instruct GGUF), resolved once per test binary.
pub fn real_model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os(REAL_GGUF_ENV) {
            return PathBuf::from(p);
        }
        source::resolve(source::DEFAULT_MODEL, &mut ()).unwrap_or_else(|e| panic!("resolving the default model: {e}"))
    })
    .clone()
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Decodes base64 little-endian f32s (the reference fixtures' encoding).
pub fn b64_f32(s: &str) -> Vec<f32> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut map = [255u8; 256];
    for (i, &c) in T.iter().enumerate() {
        map[c as usize] = i as u8;
    }
    let mut bytes = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for &c in s.as_bytes() {
        if c == b'=' {
            break;
        }
        let v = map[c as usize];
        assert!(v != 255, "bad base64");
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buf >> bits) as u8);
        }
    }
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
