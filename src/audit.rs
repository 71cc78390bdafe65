//! Append-only, hash-chained audit trail (JSON lines). Each line carries `seq`, `prev` (the
//! SHA-256 of the previous line's bytes, 64 zeros for the first) and `hash` (the SHA-256 of
//! the line's own bytes before `,"hash"`), so [`verify`] detects edited, inserted,
//! reordered and deleted lines and names the first bad one. (Without a key, someone who
//! rewrites the whole file consistently is not detected; ship the last hash elsewhere if
//! that matters.)
//!
//! Crash safety: each entry is written with one `write` on an `O_APPEND` file and then
//! `sync_data`'d, so a crash can only leave a torn *last* line (no trailing newline).
//! [`AuditLog::open`] detects it: if the torn bytes are not valid JSON they are truncated
//! away (they never were a committed entry); if they happen to parse as a complete JSON
//! entry only the missing newline is added. Either way the chain continues from the last
//! complete line and earlier lines are never rewritten.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::classify::Level;

/// `prev` of the first line.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Largest `extra` value (bytes of JSON) accepted: keeps raw content out of the log.
pub const MAX_EXTRA_VALUE_BYTES: usize = 256;
/// Bytes read from the end of the file to find the last line (doubled until found).
const TAIL_CHUNK: u64 = 64 * 1024;

/// Errors of the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// File system failure.
    #[error("audit log {path}: {source}")]
    Io {
        /// Log file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The last complete line cannot continue a chain.
    #[error("audit log {path}: line {line}: {message}")]
    Corrupt {
        /// Log file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An entry was refused before writing.
    #[error("audit entry rejected: {0}")]
    InvalidEntry(String),
}

/// One audited event. Never put raw content here: only its hash and small metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339 UTC timestamp ([`now_rfc3339`]).
    pub time: String,
    /// Who (user, service).
    pub actor: String,
    /// What (`"scan"`, `"train"`, `"export"`, ...).
    pub action: String,
    /// SHA-256 (hex) of the content concerned ([`sha256_hex`]).
    pub content_sha256: String,
    /// Classification of the content, if known.
    pub level: Option<Level>,
    /// Highest DLP score, if scanned.
    pub score: Option<f32>,
    /// Outcome (`"allow"`, `"redact"`, `"drop"`, `"fail"`, ...).
    pub decision: String,
    /// Model concerned, if any.
    pub model: Option<String>,
    /// Small extra fields (each value at most [`MAX_EXTRA_VALUE_BYTES`] of JSON).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl AuditEntry {
    /// An entry stamped now with the given actor, action, content hash and decision.
    pub fn new(actor: &str, action: &str, content_sha256: &str, decision: &str) -> AuditEntry {
        AuditEntry {
            time: now_rfc3339(),
            actor: actor.to_string(),
            action: action.to_string(),
            content_sha256: content_sha256.to_string(),
            level: None,
            score: None,
            decision: decision.to_string(),
            model: None,
            extra: serde_json::Map::new(),
        }
    }
}

/// The line format before the self hash: chain fields plus entry fields.
#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    prev: &'a str,
    #[serde(flatten)]
    entry: &'a AuditEntry,
}

/// A stored line as read back.
#[derive(Deserialize)]
struct StoredLine {
    seq: u64,
    prev: String,
    hash: String,
    #[serde(flatten)]
    #[allow(dead_code)]
    entry: AuditEntry,
}

/// Marker between a line's body and its self hash.
const HASH_MARKER: &[u8] = b",\"hash\":\"";

/// Check a line's self hash; `Err` says why not.
fn check_self_hash(line: &[u8], stored: &StoredLine) -> Result<(), String> {
    let pos = line
        .windows(HASH_MARKER.len())
        .rposition(|w| w == HASH_MARKER)
        .ok_or_else(|| "no hash field at the end of the line".to_string())?;
    let mut body = line[..pos].to_vec();
    body.push(b'}');
    if sha256_hex(&body) != stored.hash || !line.ends_with(b"\"}") {
        return Err("line content does not match its hash (line edited)".into());
    }
    Ok(())
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Current time as RFC 3339 UTC (`2026-01-31T12:00:00Z`, second precision or finer).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// An open audit log positioned to append.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    next_seq: u64,
    prev: String,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The last line of `file` (without its newline), whether it ended with a newline, and the
/// byte offset where it starts; `None` for an empty file.
fn last_line(file: &mut File, path: &Path) -> Result<Option<(Vec<u8>, bool, u64)>, AuditError> {
    let len = file.metadata().map_err(io_err(path))?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut chunk = TAIL_CHUNK;
    loop {
        let start = len.saturating_sub(chunk);
        file.seek(SeekFrom::Start(start)).map_err(io_err(path))?;
        let mut buf = Vec::new();
        file.take(len - start)
            .read_to_end(&mut buf)
            .map_err(io_err(path))?;
        let complete = buf.last() == Some(&b'\n');
        let body = if complete {
            &buf[..buf.len() - 1]
        } else {
            &buf[..]
        };
        match body.iter().rposition(|&b| b == b'\n') {
            Some(p) => {
                return Ok(Some((
                    body[p + 1..].to_vec(),
                    complete,
                    start + p as u64 + 1,
                )));
            }
            None if start == 0 => return Ok(Some((body.to_vec(), complete, 0))),
            None => chunk *= 2,
        }
    }
}

/// Number of complete lines (newline-terminated) in `path` up to `limit` bytes.
fn count_lines(path: &Path, limit: u64) -> Result<usize, AuditError> {
    let f = File::open(path).map_err(io_err(path))?;
    let mut n = 0;
    let mut r = BufReader::new(f.take(limit));
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let k = r.read_until(b'\n', &mut buf).map_err(io_err(path))?;
        if k == 0 {
            return Ok(n);
        }
        if buf.last() == Some(&b'\n') {
            n += 1;
        }
    }
}

impl AuditLog {
    /// Open (creating the file and parent directories) and continue the chain after the
    /// last complete line. A torn last line is repaired as described in the module docs.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err(path))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err(path))?;
        let mut tail = last_line(&mut file, path)?;
        if let Some((bytes, false, offset)) = &tail {
            if serde_json::from_slice::<StoredLine>(bytes).is_ok() {
                // A complete entry whose newline was lost: finish it.
                file.write_all(b"\n").map_err(io_err(path))?;
            } else {
                // Torn write: never committed; cut it off.
                file.set_len(*offset).map_err(io_err(path))?;
            }
            file.sync_data().map_err(io_err(path))?;
            tail = last_line(&mut file, path)?;
        }
        let (next_seq, prev) = match tail {
            None => (1, GENESIS_PREV.to_string()),
            Some((bytes, _, offset)) => {
                let parsed: StoredLine = match serde_json::from_slice(&bytes) {
                    Ok(p) => p,
                    Err(e) => {
                        return Err(AuditError::Corrupt {
                            path: path.to_path_buf(),
                            line: count_lines(path, offset)? + 1,
                            message: format!("last line is not a valid entry: {e}"),
                        });
                    }
                };
                (parsed.seq + 1, sha256_hex(&bytes))
            }
        };
        Ok(AuditLog {
            path: path.to_path_buf(),
            file,
            next_seq,
            prev,
        })
    }

    /// Append one entry: a single `write` of the whole line, then flush and `sync_data`.
    pub fn append(&mut self, entry: AuditEntry) -> Result<(), AuditError> {
        for (k, v) in &entry.extra {
            let size = v.to_string().len();
            if size > MAX_EXTRA_VALUE_BYTES {
                return Err(AuditError::InvalidEntry(format!(
                    "extra field {k:?} is {size} bytes of JSON (max {MAX_EXTRA_VALUE_BYTES}); log hashes, not content"
                )));
            }
        }
        let line = Line {
            seq: self.next_seq,
            prev: &self.prev,
            entry: &entry,
        };
        let mut bytes =
            serde_json::to_vec(&line).map_err(|e| AuditError::InvalidEntry(e.to_string()))?;
        let self_hash = sha256_hex(&bytes);
        bytes.pop(); // the closing brace
        bytes.extend_from_slice(HASH_MARKER);
        bytes.extend_from_slice(self_hash.as_bytes());
        bytes.extend_from_slice(b"\"}");
        let hash = sha256_hex(&bytes);
        bytes.push(b'\n');
        self.file.write_all(&bytes).map_err(io_err(&self.path))?;
        self.file.flush().map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))?;
        self.prev = hash;
        self.next_seq += 1;
        Ok(())
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Lines read.
    pub lines: usize,
    /// First bad line (1-based) and why; `None` if the chain is intact.
    pub first_bad: Option<(usize, String)>,
}

/// Check the whole chain: every line parses, its self hash matches, `seq` counts up from 1
/// and `prev` is the hash of the previous line's bytes. A missing final newline is reported as a torn line.
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    let f = File::open(path).map_err(io_err(path))?;
    let mut r = BufReader::new(f);
    let mut prev = GENESIS_PREV.to_string();
    let mut lines = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let k = r.read_until(b'\n', &mut buf).map_err(io_err(path))?;
        if k == 0 {
            return Ok(VerifyReport {
                lines,
                first_bad: None,
            });
        }
        lines += 1;
        let bad = |why: String| {
            Ok(VerifyReport {
                lines,
                first_bad: Some((lines, why)),
            })
        };
        if buf.last() != Some(&b'\n') {
            return bad("torn line (no trailing newline)".into());
        }
        let body = &buf[..buf.len() - 1];
        let parsed: StoredLine = match serde_json::from_slice(body) {
            Ok(l) => l,
            Err(e) => return bad(format!("not a valid entry: {e}")),
        };
        if let Err(why) = check_self_hash(body, &parsed) {
            return bad(why);
        }
        if parsed.seq != lines as u64 {
            return bad(format!(
                "seq is {} but expected {lines} (line inserted, deleted or reordered)",
                parsed.seq
            ));
        }
        if parsed.prev != prev {
            return bad("prev does not match the hash of the previous line (previous line edited, or lines removed/reordered)".into());
        }
        prev = sha256_hex(body);
    }
}
