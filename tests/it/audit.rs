//! Audit trail: chain continuity, every tamper kind detected at the right line, crash
//! (torn last line) recovery.

use std::io::Write;
use std::path::Path;

use workbench::audit::{AuditEntry, AuditLog, GENESIS_PREV, sha256_hex, verify};

fn entry(i: usize) -> AuditEntry {
    let mut e = AuditEntry::new(
        "tester",
        "scan",
        &sha256_hex(format!("record {i}").as_bytes()),
        "allow",
    );
    e.score = Some(0.25);
    e.extra.insert("row".into(), serde_json::json!(i));
    e
}

fn write_log(path: &Path, n: usize) {
    let mut log = AuditLog::open(path).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..n {
        log.append(entry(i)).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(path, s).unwrap_or_else(|e| panic!("{e}"));
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
}

#[test]
fn intact_log_verifies_and_reopen_continues_chain() {
    let d = tmp();
    let p = d.path().join("nested/dir/audit.jsonl");
    write_log(&p, 3);
    write_log(&p, 2); // reopen appends seq 4, 5
    let r = verify(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.lines, r.first_bad), (5, None));
    let first: serde_json::Value = serde_json::from_str(&lines(&p)[0]).unwrap_or_default();
    assert_eq!(first["prev"], GENESIS_PREV);
    assert_eq!(first["seq"], 1);
}

#[test]
fn edited_line_is_named() {
    let d = tmp();
    let p = d.path().join("a.jsonl");
    write_log(&p, 5);
    let mut l = lines(&p);
    l[2] = l[2].replace("\"allow\"", "\"drop\"");
    rewrite(&p, &l);
    let r = verify(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.first_bad.map(|b| b.0), Some(3));
}

#[test]
fn edited_last_line_is_named() {
    let d = tmp();
    let p = d.path().join("a.jsonl");
    write_log(&p, 3);
    let mut l = lines(&p);
    l[2] = l[2].replace("tester", "mallory");
    rewrite(&p, &l);
    assert_eq!(
        verify(&p).ok().and_then(|r| r.first_bad).map(|b| b.0),
        Some(3)
    );
}

#[test]
fn inserted_line_is_named() {
    let d = tmp();
    let p = d.path().join("a.jsonl");
    write_log(&p, 4);
    let mut l = lines(&p);
    let copy = l[1].clone();
    l.insert(2, copy);
    rewrite(&p, &l);
    assert_eq!(
        verify(&p).ok().and_then(|r| r.first_bad).map(|b| b.0),
        Some(3)
    );
}

#[test]
fn reordered_lines_are_named() {
    let d = tmp();
    let p = d.path().join("a.jsonl");
    write_log(&p, 4);
    let mut l = lines(&p);
    l.swap(1, 2);
    rewrite(&p, &l);
    assert_eq!(
        verify(&p).ok().and_then(|r| r.first_bad).map(|b| b.0),
        Some(2)
    );
}

#[test]
fn deleted_line_is_named() {
    let d = tmp();
    let p = d.path().join("a.jsonl");
    write_log(&p, 4);
    let mut l = lines(&p);
    l.remove(1);
    rewrite(&p, &l);
    assert_eq!(
        verify(&p).ok().and_then(|r| r.first_bad).map(|b| b.0),
        Some(2)
    );
}

#[test]
fn deleted_first_line_is_named() {
    let d = tmp();
    let p = d.path().join("a.jsonl");
    write_log(&p, 3);
    let mut l = lines(&p);
    l.remove(0);
    rewrite(&p, &l);
    assert_eq!(
        verify(&p).ok().and_then(|r| r.first_bad).map(|b| b.0),
        Some(1)
    );
}

#[test]
fn torn_last_line_is_cut_and_chain_continues() {
    let d = tmp();
    let p = d.path().join("a.jsonl");
    write_log(&p, 3);
    let before = std::fs::read(&p).unwrap_or_default();
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap_or_else(|e| panic!("{e}"));
        f.write_all(b"{\"seq\":4,\"prev\":\"ab")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(
        verify(&p).ok().and_then(|r| r.first_bad).is_some(),
        "torn line must fail verify"
    );
    write_log(&p, 1);
    let after = std::fs::read(&p).unwrap_or_default();
    assert!(
        after.starts_with(&before),
        "earlier lines must be untouched"
    );
    let r = verify(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.lines, r.first_bad), (4, None));
}

#[test]
fn complete_entry_missing_only_its_newline_is_kept() {
    let d = tmp();
    let p = d.path().join("a.jsonl");
    write_log(&p, 2);
    let mut bytes = std::fs::read(&p).unwrap_or_default();
    bytes.pop(); // drop the final newline only
    std::fs::write(&p, &bytes).unwrap_or_else(|e| panic!("{e}"));
    write_log(&p, 1);
    let r = verify(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.lines, r.first_bad), (3, None));
}

#[test]
fn oversized_extra_is_rejected_before_writing() {
    let d = tmp();
    let p = d.path().join("a.jsonl");
    let mut log = AuditLog::open(&p).unwrap_or_else(|e| panic!("{e}"));
    let mut e = entry(0);
    e.extra
        .insert("content".into(), serde_json::json!("x".repeat(1000)));
    assert!(log.append(e).is_err());
    assert_eq!(std::fs::metadata(&p).map(|m| m.len()).unwrap_or(1), 0);
}

#[test]
fn audit_cli_exit_codes() {
    use workbench::cli::audit::{AuditCommand, run};
    let d = tmp();
    let p = d.path().join("a.jsonl");
    write_log(&p, 3);
    assert_eq!(run(&AuditCommand::Verify { log: p.clone() }).ok(), Some(0));
    let mut l = lines(&p);
    l.swap(0, 2);
    rewrite(&p, &l);
    assert_eq!(run(&AuditCommand::Verify { log: p.clone() }).ok(), Some(1));
    assert!(
        run(&AuditCommand::Verify {
            log: d.path().join("missing.jsonl")
        })
        .is_err()
    );
}
