#!/usr/bin/env python3
"""Reference fixtures for workbench's GGUF reader and GGUF tokenizer (tests/it/gguf.rs).

How to run (from the repository root; needs the reference venv with numpy, gguf, transformers):

    /work/ref/venv/bin/python eval/reference/gguf_fixtures.py \
        --model /path/to/SmolLM2-135M-Instruct.Q4_1.gguf

Writes into tests/fixtures/gguf/ (override with --out):

  synthetic.gguf            tiny GGUF v3 file written with gguf.GGUFWriter: one tensor per ggml type
                            the reader decodes (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
                            Q3_K, Q4_K, Q5_K, Q6_K) holding random raw blocks with valid f16 scales,
                            plus tensors produced by gguf.quants.quantize where the package can
                            quantize; metadata of every value type; a 64-byte alignment.
  synthetic_expected.json   for each tensor: type, GGUF dims, and gguf.quants.dequantize's output as
                            f32 bit patterns; the metadata written, with types.
  real_model_expected.json  for the real model: header counts, the full tensor table, selected
                            metadata, and for one tensor of each type present the first 256
                            dequantized values, 256 values at evenly spaced indices (as f32 bits)
                            and the float64 sum of the whole tensor.
  tokenizer_expected.json   token ids from transformers' GGUF tokenizer conversion
                            (AutoTokenizer.from_pretrained(dir, gguf_file=name)) with SmolLM2's
                            published pre-tokenizer restored (see write_tokenizer), and from the
                            unmodified conversion, for multilingual, emoji, digit, code and
                            chat-special-token texts, with and without special tokens, and the
                            decoded strings; bos/eos/pad ids and the chat template.
  tokenizer_llama_bpe_expected.json
                            ids for the same vocabulary relabelled `tokenizer.ggml.pre = "llama-bpe"`
                            (Llama 3 split regex), from transformers' conversion of a metadata-only
                            GGUF written to a temporary directory.
  hf_tokenizer/             what that tokenizer's save_pretrained writes, except tokenizer.json
                            (about 2 MB: the test regenerates it with our own Tokenizer::save).

Values are compared bit for bit: every decoder in src/model/gguf.rs performs the same f32 operations
in the same order as gguf.quants. NaN is avoided in the inputs (its payload is not portable).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

SEED = 20241203
HEAD_VALUES = 256
STRIDED_VALUES = 256
# Rows x columns of each synthetic tensor: legacy types get 8 blocks, K-quants 4 super-blocks.
LEGACY_SHAPE = (4, 64)
K_SHAPE = (2, 512)

# Byte offsets of the f16 scale fields inside one block, per type (all other bytes are random).
F16_FIELDS = {
    Q.Q4_0: [0],
    Q.Q4_1: [0, 2],
    Q.Q5_0: [0],
    Q.Q5_1: [0, 2],
    Q.Q8_0: [0],
    Q.Q2_K: [80, 82],
    Q.Q3_K: [108],
    Q.Q4_K: [0, 2],
    Q.Q5_K: [0, 2],
    Q.Q6_K: [208],
}
QUANTIZABLE = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.BF16]

TEXTS = [
    "Hello, world! Grüße aus München: Äpfel, Öl, Übermut, Straße.",
    "Zahlen 12345 und 3.14159, Datum 2024-06-01; 1000000 Einträge, 007.",
    "東京は晴れです。北京欢迎你！한국어 텍스트도 있어요.",
    "Emoji: 😀🚀👍🏽 ❤️ family 👨‍👩‍👧 flags 🇩🇪🇯🇵",
    'def square(x):\n    return x ** 2  # comment\n\tif x >= 10:\n        print(f"{x:>8}")\n',
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "  leading spaces, trailing   \n\n\n  multiple newlines\r\nand tabs\t\tend ",
    "naïve café — “quotes” … ½ × ÷ ∑ ∞ Ωmega",
]


def f32_bits(values: np.ndarray) -> list[int]:
    return np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).ravel().tolist()


def random_blocks(rng: np.random.Generator, qtype: Q, shape: tuple[int, int]) -> np.ndarray:
    """Random raw blocks (rows x bytes-per-row, uint8) whose f16 fields are finite scales."""
    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    rows, cols = shape
    n_blocks = rows * cols // block_elems
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scale = rng.uniform(-0.25, 0.25, size=n_blocks).astype(np.float16)
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(rows, cols // block_elems * block_bytes)


def write_synthetic(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    path = out / "synthetic.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_custom_alignment(64)
    metadata = [
        ("test.u8", V.UINT8, 200),
        ("test.i8", V.INT8, -100),
        ("test.u16", V.UINT16, 60000),
        ("test.i16", V.INT16, -30000),
        ("test.u32", V.UINT32, 4000000000),
        ("test.i32", V.INT32, -2000000000),
        ("test.f32", V.FLOAT32, 0.1),
        ("test.bool", V.BOOL, True),
        ("test.string", V.STRING, "Grüße 😀"),
        ("test.u64", V.UINT64, 2**63 + 5),
        ("test.i64", V.INT64, -(2**62)),
        ("test.f64", V.FLOAT64, 1e-300),
    ]
    for key, vtype, value in metadata:
        writer.add_key_value(key, value, vtype)
    writer.add_key_value("test.array_i32", [1, -2, 3], V.ARRAY, sub_type=V.INT32)
    writer.add_key_value("test.array_str", ["a", "", "ß"], V.ARRAY, sub_type=V.STRING)

    tensors: dict[str, dict] = {}

    def add(name: str, data: np.ndarray, qtype: Q) -> None:
        writer.add_tensor(name, data, raw_dtype=qtype)
        values = gguf.quants.dequantize(data, qtype)
        dims = list(reversed(values.shape))
        tensors[name] = {"type": qtype.name, "dims": dims, "bits": f32_bits(values)}

    f32 = rng.standard_normal(LEGACY_SHAPE).astype(np.float32)
    f32.flat[:4] = [0.0, -0.0, np.inf, 1e-40]  # signed zero, infinity, subnormal
    add("plain.F32", f32, Q.F32)
    f16 = (rng.standard_normal(LEGACY_SHAPE) * 4).astype(np.float16)
    f16.flat[:4] = [np.float16(-0.0), np.float16(np.inf), np.float16(6e-8), np.float16(65504)]
    add("plain.F16", f16, Q.F16)
    for qtype in F16_FIELDS:
        shape = K_SHAPE if gguf.GGML_QUANT_SIZES[qtype][0] == 256 else LEGACY_SHAPE
        add(f"raw.{qtype.name}", random_blocks(rng, qtype, shape), qtype)
    for qtype in QUANTIZABLE:
        weights = rng.standard_normal(LEGACY_SHAPE).astype(np.float32)
        add(f"quantized.{qtype.name}", gguf.quants.quantize(weights, qtype), qtype)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    # Re-read with the reference reader so the expectations describe the file as written.
    reader = gguf.GGUFReader(str(path))
    for t in reader.tensors:
        assert tensors[t.name]["type"] == t.tensor_type.name
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        assert f32_bits(values) == tensors[t.name]["bits"], t.name
        tensors[t.name]["offset"] = int(t.data_offset) - int(reader.data_offset)
    expected = {
        "alignment": 64,
        "data_start": int(reader.data_offset),
        "metadata": {key: {"type": vtype.name, "value": value} for key, vtype, value in metadata},
        "tensors": tensors,
    }
    expected["metadata"]["test.f32"]["bits"] = f32_bits(np.array([0.1], dtype=np.float32))[0]
    (out / "synthetic_expected.json").write_text(json.dumps(expected, separators=(",", ":"), ensure_ascii=False))


def field_value(reader: gguf.GGUFReader, key: str):
    return reader.fields[key].contents()


def write_real_model(model: Path, out: Path) -> None:
    reader = gguf.GGUFReader(str(model))
    # GGUFReader's data_offset values are absolute; the table keeps offsets relative to the data
    # section, as the file stores them.
    table = [
        {"name": t.name, "dims": [int(d) for d in t.shape], "type": t.tensor_type.name,
         "offset": int(t.data_offset) - int(reader.data_offset)}
        for t in reader.tensors
    ]
    samples = {}
    for t in reader.tensors:
        name = t.tensor_type.name
        if name in samples:
            continue
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).ravel()
        n = values.size
        idx = [i * n // STRIDED_VALUES for i in range(STRIDED_VALUES)]
        samples[name] = {
            "tensor": t.name,
            "shape": [int(s) for s in reversed(t.shape)],
            "n_elements": n,
            "head_bits": f32_bits(values[:HEAD_VALUES]),
            "strided_index": idx,
            "strided_bits": f32_bits(values[idx]),
            "sum": float(values.astype(np.float64).sum()),
        }
    keys = ["general.architecture", "llama.block_count", "llama.embedding_length",
            "llama.attention.head_count", "llama.attention.head_count_kv", "llama.vocab_size",
            "llama.context_length", "llama.feed_forward_length", "tokenizer.ggml.model",
            "tokenizer.ggml.pre", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id"]
    expected = {
        "version": int(field_value(reader, "GGUF.version")),
        "tensor_count": len(reader.tensors),
        "kv_count": int(field_value(reader, "GGUF.kv_count")),
        "metadata": {k: field_value(reader, k) for k in keys},
        "rope_freq_base_bits": f32_bits(np.array([field_value(reader, "llama.rope.freq_base")]))[0],
        "rms_eps_bits": f32_bits(np.array([field_value(reader, "llama.attention.layer_norm_rms_epsilon")]))[0],
        "n_tokens": len(reader.fields["tokenizer.ggml.tokens"].data),
        "n_merges": len(reader.fields["tokenizer.ggml.merges"].data),
        "tensors": table,
        "data_start": int(reader.data_offset),
        "samples": samples,
    }
    (out / "real_model_expected.json").write_text(json.dumps(expected, separators=(",", ":"), ensure_ascii=False))


def write_tokenizer(model: Path, out: Path) -> None:
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model.parent), gguf_file=model.name)
    # transformers' GGUF conversion has no rule for `tokenizer.ggml.pre = "smollm"` and keeps
    # GPT2Tokenizer's plain ByteLevel split. SmolLM2's published tokenizer.json (and llama.cpp's
    # smollm regexes "\p{N}" then GPT-2) first split every numeric char on its own. The primary
    # reference ("ids") is the converted vocabulary with that published pre-tokenizer; the
    # unmodified conversion is kept as "ids_transformers_gguf" (they differ only where a numeric
    # char follows a space or other digits, e.g. " ½").
    as_converted = AutoTokenizer.from_pretrained(str(model.parent), gguf_file=model.name)
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    cases = []
    for text in TEXTS:
        plain = tok.encode(text, add_special_tokens=False)
        cases.append({
            "text": text,
            "ids": plain,
            "ids_with_special": tok.encode(text, add_special_tokens=True),
            "ids_transformers_gguf": as_converted.encode(text, add_special_tokens=False),
            "decoded": tok.decode(plain, skip_special_tokens=False),
        })
    expected = {
        "tokenizer_class": type(tok).__name__,
        "bos_id": tok.bos_token_id,
        "eos_id": tok.eos_token_id,
        "pad_id": tok.pad_token_id,
        "vocab_size": len(tok),
        "chat_template": tok.chat_template,
        "cases": cases,
    }
    (out / "tokenizer_expected.json").write_text(json.dumps(expected, separators=(",", ":"), ensure_ascii=False))

    saved = out / "hf_tokenizer"
    if saved.exists():
        shutil.rmtree(saved)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        saved.mkdir()
        for name in sorted(os.listdir(tmp)):
            if name != "tokenizer.json":
                shutil.copy(Path(tmp) / name, saved / name)
        print("tokenizer.json bytes:", (Path(tmp) / "tokenizer.json").stat().st_size)


def write_llama_bpe_variant(model: Path, out: Path) -> None:
    """Ids for the same vocabulary with `tokenizer.ggml.pre = "llama-bpe"` (the Llama 3 split).

    A metadata-only GGUF (no tensors) with the real file's tokenizer keys and the pre-tokenizer
    name replaced is written to a temporary directory and converted by transformers.
    """
    from transformers import AutoTokenizer

    reader = gguf.GGUFReader(str(model))
    with tempfile.TemporaryDirectory() as tmp:
        name = "llama_bpe_variant.gguf"
        writer = gguf.GGUFWriter(str(Path(tmp) / name), arch="llama")
        writer.add_key_value("tokenizer.ggml.model", "gpt2", V.STRING)
        writer.add_key_value("tokenizer.ggml.pre", "llama-bpe", V.STRING)
        for key, sub in [("tokenizer.ggml.tokens", V.STRING), ("tokenizer.ggml.merges", V.STRING),
                         ("tokenizer.ggml.token_type", V.INT32)]:
            writer.add_key_value(key, list(reader.fields[key].contents()), V.ARRAY, sub_type=sub)
        for key in ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"]:
            writer.add_key_value(key, int(reader.fields[key].contents()), V.UINT32)
        writer.add_key_value("tokenizer.ggml.add_bos_token", False, V.BOOL)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tok = AutoTokenizer.from_pretrained(tmp, gguf_file=name)
        backend = json.loads(tok.backend_tokenizer.to_str())
        expected = {
            "pre": "llama-bpe",
            "reference_pre_tokenizer": backend["pre_tokenizer"],
            "reference_ignore_merges": backend["model"].get("ignore_merges"),
            "cases": [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in TEXTS],
        }
    (out / "tokenizer_llama_bpe_expected.json").write_text(json.dumps(expected, separators=(",", ":"), ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/gguf"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    write_synthetic(args.out)
    write_real_model(args.model, args.out)
    write_tokenizer(args.model, args.out)
    write_llama_bpe_variant(args.model, args.out)


if __name__ == "__main__":
    main()
