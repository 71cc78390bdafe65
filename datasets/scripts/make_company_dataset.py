#!/usr/bin/env python3
"""Builds the small synthetic "company" datasets that exercise the governance path on every
run: an internal FAQ as CSV (alpaca form) and runbook / code-review conversations as JSONL
(chat form). Every name, address, IBAN and key in them is invented; the keys are random
strings in the vendors' formats, generated here with a fixed seed (they never were real).
Run: python3 datasets/scripts/make_company_dataset.py
"""
import csv
import json
import random
import string
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "company"
rng = random.Random(20261203)


def rand(chars, n):
    return "".join(rng.choice(chars) for _ in range(n))


UP = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
aws_key = "AKIA" + rand(string.ascii_uppercase + "234567", 16)  # base32, as real key ids
aws_secret = rand(ALNUM + "/+", 40)
gh_token = "ghp_" + rand(ALNUM, 36)
slack = "xoxb-" + rand(string.digits, 12) + "-" + rand(string.digits, 12) + "-" + rand(ALNUM, 24)
db_pass = rand(ALNUM, 18)

faq = [
    ("How do I request VPN access?", "Open a ticket in the IT portal under Access > VPN; approval takes one working day.", "INTERNAL"),
    ("Where is the travel policy?", "The travel policy is on the intranet under HR > Policies > Travel.", "INTERNAL"),
    ("Who approves expense reports above 500 EUR?", "Your cost-centre manager approves them; above 5000 EUR the finance controller signs too.", "INTERNAL"),
    ("What are the office opening hours?", "The offices are open from 7:00 to 20:00 on working days.", "PUBLIC"),
    ("How do I book a meeting room?", "Use the calendar's room finder and pick a room with enough seats.", "PUBLIC"),
    ("How do I reset my password?", "Use the self-service portal; you need your second factor at hand.", "INTERNAL"),
    ("Where do I send supplier invoices?", "Send them to accounts.payable@example-corp.test and quote the purchase order number.", ""),
    ("What is the salary account for the Munich payroll?", "Payroll for Munich is paid from DE89 3704 0044 0532 0130 00; contact jana.keller@example-corp.test for changes.", "CONFIDENTIAL"),
    ("Which laptop models can I order?", "Standard and developer models are listed in the IT shop; developer models need a manager's approval.", "INTERNAL"),
    ("What is the guest Wi-Fi called?", "The guest network is called corp-guest; vouchers are printed at reception.", "PUBLIC"),
    ("How long do we keep customer contracts?", "Contracts are kept ten years after they end, in the legal archive.", "INTERNAL"),
    ("Who is the data protection officer?", "Our data protection officer is Dr. Max Berger, reachable at dpo@example-corp.test or +49 89 1234 5678.", "CONFIDENTIAL"),
]
with (OUT / "internal_faq.csv").open("w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["instruction", "input", "output", "classification"])
    for q, a, lvl in faq:
        w.writerow([q, "", a, lvl])

chats = [
    ([("user", "The nightly backup job failed with 'disk full'. What do I do?"),
      ("assistant", "Check free space on the backup volume with df -h, delete snapshots older than 14 days with the cleanup script, then rerun the job from the scheduler.")], "INTERNAL"),
    ([("user", "How do we roll back a bad deployment of the billing service?"),
      ("assistant", "Run the deploy tool with the previous release tag, watch the health dashboard for five minutes, and post in the incident channel.")], "INTERNAL"),
    ([("user", "Review this: `if user == None: return`"),
      ("assistant", "Use `is None` instead of `== None`; it is the idiomatic identity check and cannot be overridden by __eq__.")], "PUBLIC"),
    ([("user", "Review this config for the staging database."),
      ("assistant", f"Do not commit credentials: the line `password={db_pass}` must move to the secret store, and the host should come from the environment.")], "CONFIDENTIAL"),
    ([("user", "What are the deploy credentials for the CI runner?"),
      ("assistant", f"The runner uses aws_access_key_id={aws_key} and aws_secret_access_key={aws_secret}.")], "SECRET"),
    ([("user", "Which token does the release bot use?"),
      ("assistant", f"It uses the GitHub token {gh_token} and posts with the Slack bot token {slack}.")], ""),
    ([("user", "VERTRAULICH: Wie hoch ist das Budget für das Projekt Falke?"),
      ("assistant", "Das Budget für Projekt Falke beträgt 2,4 Mio. EUR für 2027.")], ""),
    ([("user", "Who should I contact about the on-call rota?"),
      ("assistant", "Ask the team lead, Lena Hoffmann (lena.hoffmann@example-corp.test), or check the on-call calendar.")], "INTERNAL"),
    ([("user", "Review: function add(a, b) { return a - b }"),
      ("assistant", "The function subtracts instead of adding; return a + b, and add a unit test for it.")], "PUBLIC"),
    ([("user", "How do I restart the message queue safely?"),
      ("assistant", "Drain consumers first, then restart one broker at a time and wait until the cluster is green before the next.")], "INTERNAL"),
]
with (OUT / "runbooks_reviews.jsonl").open("w", encoding="utf-8") as f:
    for msgs, lvl in chats:
        row = {"messages": [{"role": r, "content": c} for r, c in msgs]}
        if lvl:
            row["classification"] = lvl
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
print("wrote", OUT / "internal_faq.csv", "and", OUT / "runbooks_reviews.jsonl")
