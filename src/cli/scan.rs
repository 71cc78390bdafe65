//! `workbench scan`: run the DLP scanner over a file or stdin, print a summary per level and
//! kind, optionally write JSON findings and SARIF 2.1.0; exit 1 when a finding reaches the
//! threshold. Never prints or writes a matched value, only masked previews.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::data::classify::Level;
use crate::data::dlp::{Category, Finding, Scanner, masked_preview};

/// Arguments of `workbench scan`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Scan a file for secrets and personal data (DLP)",
    long_about = "Scan a text file (JSONL, CSV, plain text, anything UTF-8) or stdin for secrets \
(cloud and SaaS keys, private keys, tokens, passwords) and PII (e-mail, phone, IBAN, cards, SSN, \
Steuer-ID, IP, dates of birth). Prints a summary per level and kind; matched values are never \
printed, only masked previews.\n\nExit code: 0 = nothing at or above the threshold, 1 = findings \
at or above it, 2 = error.",
    after_help = "Examples:\n  workbench scan data/train.jsonl --json findings.json --sarif findings.sarif\n  \
cat notes.txt | workbench scan - --fail-on 0.8\n  workbench scan export.csv --rules my_rules.toml"
)]
pub struct ScanArgs {
    /// File to scan, or '-' for stdin.
    pub input: PathBuf,
    /// Write findings as JSON here (kind, rule, line, byte span, score, masked preview).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write findings as SARIF 2.1.0 here (for code-scanning UIs).
    #[arg(long, value_name = "PATH")]
    pub sarif: Option<PathBuf>,
    /// Extra rules file layered on the bundled rules (same schema; same id replaces).
    #[arg(long, value_name = "PATH")]
    pub rules: Option<PathBuf>,
    /// Score threshold for exit code 1 (default: the rules' block threshold).
    #[arg(long, value_name = "SCORE")]
    pub fail_on: Option<f32>,
}

/// One finding as written to `--json`: location and score, never the value itself.
#[derive(Debug, Serialize)]
struct FindingOut<'a> {
    kind: &'a str,
    rule: &'a str,
    category: Category,
    level: Level,
    line: usize,
    column: usize,
    start: usize,
    end: usize,
    score: f32,
    preview: String,
}

fn read_input(input: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    if input == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading stdin")?;
    } else {
        bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    }
    // Invalid UTF-8 is scanned lossily; offsets then refer to the lossy text.
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Line starts, for byte offset -> (1-based line, 1-based column in chars).
fn line_index(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

fn locate(text: &str, starts: &[usize], offset: usize) -> (usize, usize) {
    let line = starts.partition_point(|&s| s <= offset).max(1);
    let col = text[starts[line - 1]..offset].chars().count() + 1;
    (line, col)
}

/// Write `bytes` to `path` atomically (temp file in the same directory, then rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

fn sarif(input: &Path, findings: &[FindingOut<'_>], threshold: f32) -> serde_json::Value {
    let mut rule_ids: Vec<&str> = findings.iter().map(|f| f.rule).collect();
    rule_ids.sort_unstable();
    rule_ids.dedup();
    let rules: Vec<serde_json::Value> = rule_ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "shortDescription": {"text": format!("DLP rule {id}")}}))
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "ruleId": f.rule,
                "level": if f.score >= threshold { "error" } else { "warning" },
                "message": {"text": format!("{} ({}) score {:.2}: {}", f.kind, f.level, f.score, f.preview)},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": input.to_string_lossy()},
                    "region": {"startLine": f.line, "startColumn": f.column,
                               "byteOffset": f.start, "byteLength": f.end - f.start}
                }}],
                "properties": {"kind": f.kind, "score": f.score}
            })
        })
        .collect();
    serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "workbench-dlp", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
            "results": results
        }]
    })
}

/// Run the scan; returns the process exit code (0 clean, 1 findings at/above threshold).
pub fn run(args: &ScanArgs) -> Result<i32> {
    let mut scanner = Scanner::builtin();
    if let Some(r) = &args.rules {
        scanner = scanner.with_extra_rules(r)?;
    }
    let threshold = args.fail_on.unwrap_or_else(|| scanner.block_threshold());
    anyhow::ensure!(
        (0.0..=1.0).contains(&threshold),
        "--fail-on must be within 0..=1 (got {threshold})"
    );
    let text = read_input(&args.input)?;
    let findings: Vec<Finding> = scanner.scan(&text);
    let starts = line_index(&text);
    let out: Vec<FindingOut<'_>> = findings
        .iter()
        .map(|f| {
            let (line, column) = locate(&text, &starts, f.start);
            FindingOut {
                kind: &f.kind,
                rule: &f.rule,
                category: f.category,
                level: f.severity(),
                line,
                column,
                start: f.start,
                end: f.end,
                score: f.score,
                preview: masked_preview(&text[f.start..f.end]),
            }
        })
        .collect();
    let mut summary: BTreeMap<(std::cmp::Reverse<Level>, &str), (usize, usize)> = BTreeMap::new();
    for f in &out {
        let e = summary
            .entry((std::cmp::Reverse(f.level), f.kind))
            .or_default();
        e.0 += 1;
        if f.score >= threshold {
            e.1 += 1;
        }
    }
    let blocking = out.iter().filter(|f| f.score >= threshold).count();
    println!(
        "scanned {} ({} bytes): {} findings, {} at or above {threshold:.2}",
        args.input.display(),
        text.len(),
        out.len(),
        blocking
    );
    for ((level, kind), (n, above)) in &summary {
        println!(
            "  {:<13} {:<32} {:>6}  ({} blocking)",
            level.0.to_string(),
            kind,
            n,
            above
        );
    }
    if let Some(p) = &args.json {
        let bytes = serde_json::to_vec_pretty(&out).context("serialising findings")?;
        write_atomic(p, &bytes)?;
    }
    if let Some(p) = &args.sarif {
        let bytes = serde_json::to_vec_pretty(&sarif(&args.input, &out, threshold))
            .context("serialising SARIF")?;
        write_atomic(p, &bytes)?;
    }
    Ok(if blocking > 0 { 1 } else { 0 })
}
