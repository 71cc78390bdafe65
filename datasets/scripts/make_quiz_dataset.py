#!/usr/bin/env python3
"""Builds datasets/quiz_facts.jsonl (alpaca form) from the BSD games quiz files.

Source: Debian package `bsdgames` (BSD-3-Clause, The Regents of the University of
California), files /usr/share/games/bsdgames/quiz/{europe,africa,asia,america,state,elements}.
Run:  apt-get download bsdgames && dpkg-deb -x bsdgames_*.deb /tmp/bsd
      python3 datasets/scripts/make_quiz_dataset.py /tmp/bsd/usr/share/games/bsdgames/quiz
"""
import json
import re
import sys
from pathlib import Path

QUIZ = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/games/bsdgames/quiz")
OUT = Path(__file__).resolve().parents[1] / "quiz_facts.jsonl"


def first_alt(s: str) -> str:
    """Expands quiz syntax: [a|b] -> a, {x} -> x, top-level a|b -> a."""
    while True:
        m = re.search(r"\[([^\[\]]*)\]", s)
        if not m:
            break
        s = s[: m.start()] + m.group(1).split("|")[0] + s[m.end():]
    while True:
        m = re.search(r"\{([^{}]*)\}", s)
        if not m:
            break
        s = s[: m.start()] + m.group(1) + s[m.end():]
    return s.split("|")[0].strip()


def lines(name):
    text = (QUIZ / name).read_text(encoding="latin-1").replace("\\\n", "")
    return [l for l in text.splitlines() if l.strip() and not l.startswith("#")]


CAPITAL_QUESTIONS = [
    "What is the capital of {c}?",
    "Name the capital city of {c}.",
    "Which city is the capital of {c}?",
]

rows = []
for region in ["europe", "africa", "asia", "america"]:
    for i, l in enumerate(lines(region)):
        parts = l.split(":")
        if len(parts) < 2:
            continue
        country, capital = first_alt(parts[0]), first_alt(parts[1])
        q = CAPITAL_QUESTIONS[i % len(CAPITAL_QUESTIONS)].format(c=country)
        rows.append({"instruction": q, "input": "", "output": f"The capital of {country} is {capital}.", "classification": "PUBLIC", "source": f"bsdgames/quiz/{region}"})
for i, l in enumerate(lines("state")):
    parts = l.split(":")
    state, capital = first_alt(parts[0]), first_alt(parts[1])
    rows.append({"instruction": f"What is the capital of the US state of {state}?", "input": "", "output": f"The capital of {state} is {capital}.", "classification": "PUBLIC", "source": "bsdgames/quiz/state"})
for i, l in enumerate(lines("elements")):
    parts = l.split(":")
    if len(parts) < 4:
        continue
    sym, num, name = first_alt(parts[0]), first_alt(parts[1]), first_alt(parts[3])
    if i % 2 == 0:
        rows.append({"instruction": f"What is the chemical symbol of {name}?", "input": "", "output": f"The chemical symbol of {name} is {sym}.", "classification": "PUBLIC", "source": "bsdgames/quiz/elements"})
    else:
        rows.append({"instruction": f"Which element has atomic number {num}?", "input": "", "output": f"Element number {num} is {name} ({sym}).", "classification": "PUBLIC", "source": "bsdgames/quiz/elements"})

with OUT.open("w", encoding="utf-8") as f:
    for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(f"wrote {len(rows)} rows to {OUT}")
