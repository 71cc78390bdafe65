//! The governance stage: every record is scanned, classified and handled by the recipe's
//! policy (allow, redact, drop, fail). SECRET never reaches training, whatever the policy.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::classify::{self, Action, Level, Policy, SourceRule};
use super::dlp::{self, Scanner};
use super::ingest::Record;

/// What happened to one record.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub source: String,
    pub row: usize,
    pub level: Level,
    pub action: Action,
    pub reasons: Vec<String>,
    /// Finding kinds (never the matched text).
    pub finding_kinds: Vec<String>,
    /// sha256 of the record's original content.
    pub content_sha256: String,
}

/// Counts for the run summary and the manifest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GovernanceReport {
    pub rows_in: usize,
    pub rows_used: usize,
    pub per_level: BTreeMap<String, usize>,
    pub per_action: BTreeMap<String, usize>,
    pub findings_per_kind: BTreeMap<String, usize>,
    /// Highest level among rows that go to training.
    pub highest_level_used: Option<Level>,
}

/// A record the policy refused with `fail`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{source_path}: row {row}: classified {level} and the policy for {level} is `fail` ({reasons})"
)]
pub struct PolicyFailure {
    pub source_path: String,
    pub row: usize,
    pub level: Level,
    pub reasons: String,
}

fn content_hash(r: &Record) -> String {
    let mut h = Sha256::new();
    for m in &r.messages {
        h.update(m.role.as_bytes());
        h.update([0]);
        h.update(m.content.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Applies scanning, classification and the policy to every record.
/// Returns the records that may train (redacted where the policy says so), one decision
/// per input record, and the counts.
pub fn govern(
    records: Vec<Record>,
    scanner: &Scanner,
    policy: &Policy,
    rules: &[SourceRule],
    default_level: Level,
) -> Result<(Vec<Record>, Vec<Decision>, GovernanceReport), PolicyFailure> {
    let mut used = Vec::new();
    let mut decisions = Vec::with_capacity(records.len());
    let mut report = GovernanceReport {
        rows_in: records.len(),
        ..Default::default()
    };
    for mut record in records {
        let content_sha256 = content_hash(&record);
        let per_message: Vec<Vec<dlp::Finding>> = record
            .messages
            .iter()
            .map(|m| scanner.scan(&m.content))
            .collect();
        let text: String = record
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let all_findings: Vec<dlp::Finding> = scanner.scan(&text);
        let label = record.label.or(Some(default_level));
        let c = classify::classify(label, &text, &record.source, rules, &all_findings);
        let action = match (c.level, policy.action_for(c.level)) {
            // SECRET never trains: the policy can only choose between drop and fail.
            (Level::Secret, Action::Fail) => Action::Fail,
            (Level::Secret, _) => Action::Drop,
            (_, a) => a,
        };
        let kinds: Vec<String> = all_findings.iter().map(|f| f.kind.clone()).collect();
        for k in &kinds {
            *report.findings_per_kind.entry(k.clone()).or_default() += 1;
        }
        *report.per_level.entry(c.level.to_string()).or_default() += 1;
        *report
            .per_action
            .entry(format!("{action:?}").to_lowercase())
            .or_default() += 1;
        let decision = Decision {
            source: record.source.clone(),
            row: record.row,
            level: c.level,
            action,
            reasons: c.reasons.clone(),
            finding_kinds: kinds,
            content_sha256,
        };
        match action {
            Action::Fail => {
                return Err(PolicyFailure {
                    source_path: record.source.clone(),
                    row: record.row,
                    level: c.level,
                    reasons: c.reasons.join("; "),
                });
            }
            Action::Drop => {}
            Action::Allow | Action::Redact => {
                if action == Action::Redact {
                    redact_record(&mut record, &per_message);
                }
                report.highest_level_used = Some(
                    report
                        .highest_level_used
                        .map_or(c.level, |h| h.max(c.level)),
                );
                report.rows_used += 1;
                used.push(record);
            }
        }
        decisions.push(decision);
    }
    Ok((used, decisions, report))
}

/// Separator that joins a record's messages for redaction; a message containing it is
/// redacted on its own instead.
const JOIN: char = '\u{1F}';

/// Redacts every message of a record with one numbering, so the same value gets the same
/// placeholder (`<EMAIL_1>`) wherever it appears in the record.
fn redact_record(record: &mut Record, per_message: &[Vec<dlp::Finding>]) {
    if record.messages.iter().any(|m| m.content.contains(JOIN)) {
        for (m, f) in record.messages.iter_mut().zip(per_message) {
            if !f.is_empty() {
                m.content = dlp::redact(&m.content, f).text;
            }
        }
        return;
    }
    let mut joined = String::new();
    let mut shifted = Vec::new();
    for (i, (m, f)) in record.messages.iter().zip(per_message).enumerate() {
        if i > 0 {
            joined.push(JOIN);
        }
        let base = joined.len();
        shifted.extend(f.iter().map(|x| dlp::Finding {
            start: x.start + base,
            end: x.end + base,
            ..x.clone()
        }));
        joined.push_str(&m.content);
    }
    let redacted = dlp::redact(&joined, &shifted).text;
    for (m, part) in record.messages.iter_mut().zip(redacted.split(JOIN)) {
        m.content = part.to_string();
    }
}

/// Fingerprint of the records that go to training (order-sensitive).
pub fn fingerprint(records: &[Record]) -> String {
    let mut h = Sha256::new();
    for r in records {
        h.update(content_hash(r).as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::template::Message;

    fn record(level: Option<Level>, user: &str, answer: &str) -> Record {
        Record {
            source: "t.jsonl".into(),
            row: 1,
            messages: vec![
                Message::new("user", user),
                Message::new("assistant", answer),
            ],
            label: level,
        }
    }

    #[test]
    fn redaction_numbers_values_consistently_across_a_record() {
        let email = format!("{}@{}", "jana.keller", "example-corp.test");
        let other = format!("{}@{}", "max", "example-corp.test");
        let r = record(
            Some(Level::Confidential),
            &format!("Mail {email} or {other}?"),
            &format!("Write to {email}."),
        );
        let (used, _, report) = govern(
            vec![r],
            &Scanner::builtin(),
            &Policy::default(),
            &[],
            Level::Internal,
        )
        .unwrap();
        assert_eq!(report.per_action.get("redact"), Some(&1));
        let u = &used[0].messages[0].content;
        let a = &used[0].messages[1].content;
        assert!(!u.contains(&email) && !a.contains(&email), "{u} / {a}");
        assert_eq!(u, "Mail <EMAIL_1> or <EMAIL_2>?");
        assert_eq!(a, "Write to <EMAIL_1>.");
    }

    #[test]
    fn secret_never_trains_whatever_the_policy() {
        let policy = Policy {
            public: Action::Allow,
            internal: Action::Allow,
            confidential: Action::Allow,
            secret: Action::Allow,
        };
        let r = record(Some(Level::Secret), "q", "a");
        let (used, decisions, report) =
            govern(vec![r], &Scanner::builtin(), &policy, &[], Level::Public).unwrap();
        assert!(used.is_empty());
        assert_eq!(decisions[0].action, Action::Drop);
        assert_eq!(report.highest_level_used, None);
        let policy = Policy {
            secret: Action::Fail,
            ..policy
        };
        let e = govern(
            vec![record(Some(Level::Secret), "q", "a")],
            &Scanner::builtin(),
            &policy,
            &[],
            Level::Public,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("t.jsonl") && e.to_string().contains("row 1"),
            "{e}"
        );
    }
}
