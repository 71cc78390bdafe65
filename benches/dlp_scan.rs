//! DLP scanner throughput on a generated mixed corpus (prose, code/config with a few
//! secrets, CSV with numbers, JSONL chat records with PII), reported as bytes/s.
//! Baseline in the same run: one pass of a single trivial regex over the same bytes.
//!
//! Run: `cargo bench --bench dlp_scan`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use workbench::data::dlp::Scanner;

/// Size of the generated corpus in bytes (approximate).
const CORPUS_BYTES: usize = 4 << 20;

fn corpus() -> String {
    let key = ["AK", "IA", "Q3EGUFR7W2KXYZ4P"].concat();
    let blocks = [
        "The quarterly report shows revenue growth of 12% across all regions; the team met on \
         2024-03-14 to discuss the roadmap and agreed to ship version 2.3.1 next month.\n"
            .to_string(),
        format!("[default]\nregion = eu-central-1\naws_access_key_id = {key}\ntimeout = 30\nretries = 3\n"),
        "id,order,amount,created\n1001,4711,19.99,1748503543012\n1002,4712,5.49,1748503549921\n".to_string(),
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Bitte an max.mustermann@example.de schicken, \
         Tel. +49 30 1234567\"},{\"role\":\"assistant\",\"content\":\"Erledigt.\"}]}\n"
            .to_string(),
        "fn main() { let x = compute(42); println!(\"{}\", x); } // server at 10.0.0.12:8080\n".to_string(),
        "Überweisung an DE89 3704 0044 0532 0130 00, Betreff: Rechnung 2024-117 — danke! 😀\n".to_string(),
    ];
    let mut s = String::with_capacity(CORPUS_BYTES + 1024);
    let mut i = 0;
    while s.len() < CORPUS_BYTES {
        s.push_str(&blocks[i % blocks.len()]);
        // Mostly plain text: secrets and PII are rare in real data.
        for _ in 0..6 {
            s.push_str(&blocks[0]);
        }
        i += 1;
    }
    s
}

fn bench(c: &mut Criterion) {
    let text = corpus();
    let scanner = Scanner::builtin();
    let baseline =
        regex::Regex::new(r"AKIA[A-Z2-7]{16}").unwrap_or_else(|e| panic!("baseline regex: {e}"));
    let mut g = c.benchmark_group("dlp_scan");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(20);
    g.bench_function("builtin_rules_mixed_corpus", |b| {
        b.iter(|| black_box(scanner.scan(black_box(&text))).len())
    });
    g.bench_function("baseline_single_regex", |b| {
        b.iter(|| baseline.find_iter(black_box(&text)).count())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
