#!/usr/bin/env python3
"""Reference chat-template renderings from transformers' apply_chat_template, for the
workbench's template test. Writes tests/fixtures/chat/smollm2_templates.json.

Run: python eval/reference/chat_template_fixtures.py --gguf <SmolLM2-135M-Instruct.Q4_1.gguf>
"""
import argparse
import json
from pathlib import Path

import transformers

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "chat" / "smollm2_templates.json"

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Capital of Japan?"}],
    [
        {"role": "user", "content": "Hi! Wie geht's? 😀"},
        {"role": "assistant", "content": "Gut, danke."},
        {"role": "user", "content": "Und das Wetter in Zürich?"},
    ],
]

ap = argparse.ArgumentParser()
ap.add_argument("--gguf", type=Path, required=True)
args = ap.parse_args()
tok = transformers.AutoTokenizer.from_pretrained(args.gguf.parent, gguf_file=args.gguf.name)
cases = []
for conv in CONVERSATIONS:
    for gen in (True, False):
        text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
        cases.append({"messages": conv, "add_generation_prompt": gen, "text": text})
OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps({"transformers": transformers.__version__, "cases": cases}, ensure_ascii=False, indent=1))
print("wrote", len(cases), "cases to", OUT)
