#!/usr/bin/env python3
"""A PEFT LoRA adapter for SmolLM2-135M-Instruct and the logits PEFT computes with it, for
the workbench's adapter-import test. Writes tests/fixtures/peft/smollm2_r2/ (the adapter as
PEFT saves it) and tests/fixtures/peft/smollm2_r2_reference.json.

Run: python eval/reference/peft_fixtures.py --gguf <SmolLM2-135M-Instruct.Q4_1.gguf>
"""
import argparse
import base64
import json
from pathlib import Path

import numpy as np
import peft
import torch
import transformers

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "peft"

ap = argparse.ArgumentParser()
ap.add_argument("--gguf", type=Path, required=True)
args = ap.parse_args()
torch.manual_seed(0)
tok = transformers.AutoTokenizer.from_pretrained(args.gguf.parent, gguf_file=args.gguf.name)
base = transformers.AutoModelForCausalLM.from_pretrained(args.gguf.parent, gguf_file=args.gguf.name, dtype=torch.float32)
cfg = peft.LoraConfig(r=2, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "down_proj"], task_type="CAUSAL_LM")
model = peft.get_peft_model(base, cfg)
with torch.no_grad():
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.normal_(0.0, 0.05)  # PEFT starts B at zero; a trained adapter does not
model.eval()
model.save_pretrained(OUT / "smollm2_r2")
chat = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True)
ids = tok(chat, add_special_tokens=False)["input_ids"]
with torch.no_grad():
    adapted = model(torch.tensor([ids])).logits[0, -1].numpy()
    with model.disable_adapter():
        plain = model(torch.tensor([ids])).logits[0, -1].numpy()
rec = {
    "peft": peft.__version__,
    "ids": ids,
    "adapted_last": base64.b64encode(adapted.astype("<f4").tobytes()).decode(),
    "base_last": base64.b64encode(plain.astype("<f4").tobytes()).decode(),
    "adapter_effect": float(np.abs(adapted - plain).max()),
}
(OUT / "smollm2_r2_reference.json").write_text(json.dumps(rec))
print("adapter changes logits by up to", rec["adapter_effect"])
