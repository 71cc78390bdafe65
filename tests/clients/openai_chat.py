#!/usr/bin/env python3
"""Calls a running `workbench serve` with the official OpenAI Python SDK.

Usage: python tests/clients/openai_chat.py BASE_URL API_KEY MODEL
Prints the model list and the answer; exits non-zero on any client error.
"""
import sys

import openai

base_url, key, model = sys.argv[1:4]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=300)
models = [m.id for m in client.models.list().data]
print("models:", models)
resp = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    max_tokens=24,
    temperature=0,
)
print("finish:", resp.choices[0].finish_reason)
print("usage:", resp.usage.prompt_tokens, resp.usage.completion_tokens)
print("answer:", resp.choices[0].message.content)
stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    max_tokens=24,
    temperature=0,
    stream=True,
)
pieces, finish = [], None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.choices and chunk.choices[0].finish_reason:
        finish = chunk.choices[0].finish_reason
streamed = "".join(pieces)
print("streamed:", streamed, "finish:", finish, "chunks:", len(pieces))
if streamed != resp.choices[0].message.content:
    print("streamed answer differs from the non-streamed one")
    sys.exit(1)
try:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    bad = openai.OpenAI(base_url=base_url, api_key="sk-wrong-key-000000000000", max_retries=0)
    bad.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    print("unauthenticated call was accepted")
    sys.exit(1)
except openai.AuthenticationError as e:
    print("wrong key refused:", e.status_code)
