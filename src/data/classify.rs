//! Record classification: the sensitivity level of a training record from its label, the
//! markings in its text, rules on its source and the DLP findings in it, and the policy
//! action each level gets.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::data::dlp::Finding;

/// Sensitivity level, ordered `Public < Internal < Confidential < Secret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// May be published.
    Public,
    /// For employees only.
    Internal,
    /// Need-to-know; personal data.
    Confidential,
    /// Credentials, keys, classified material.
    Secret,
}

impl Level {
    /// All levels, lowest first.
    pub const ALL: [Level; 4] = [
        Level::Public,
        Level::Internal,
        Level::Confidential,
        Level::Secret,
    ];

    /// Upper-case English name (`"CONFIDENTIAL"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Public => "PUBLIC",
            Level::Internal => "INTERNAL",
            Level::Confidential => "CONFIDENTIAL",
            Level::Secret => "SECRET",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a level name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown classification level {0:?} (expected PUBLIC, INTERNAL, CONFIDENTIAL, SECRET or ÖFFENTLICH, INTERN, VERTRAULICH, GEHEIM)"
)]
pub struct ParseLevelError(pub String);

impl FromStr for Level {
    type Err = ParseLevelError;

    /// Case-insensitive; English names and German `ÖFFENTLICH`/`OEFFENTLICH`, `INTERN`,
    /// `VERTRAULICH`, `GEHEIM`.
    fn from_str(s: &str) -> Result<Level, ParseLevelError> {
        match s.trim().to_lowercase().as_str() {
            "public" | "öffentlich" | "oeffentlich" => Ok(Level::Public),
            "internal" | "intern" => Ok(Level::Internal),
            "confidential" | "vertraulich" => Ok(Level::Confidential),
            "secret" | "geheim" => Ok(Level::Secret),
            _ => Err(ParseLevelError(s.to_string())),
        }
    }
}

impl Serialize for Level {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Level, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What the training pipeline does with a record of some level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Use as is.
    Allow,
    /// Use with findings replaced by placeholders.
    Redact,
    /// Leave the record out.
    Drop,
    /// Stop the run with an error.
    Fail,
}

/// Action per level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// PUBLIC records.
    pub public: Action,
    /// INTERNAL records.
    pub internal: Action,
    /// CONFIDENTIAL records.
    pub confidential: Action,
    /// SECRET records: only `drop` or `fail` take effect (see [`Policy::action_for`]).
    pub secret: Action,
}

impl Default for Policy {
    /// allow, allow, redact, drop.
    fn default() -> Policy {
        Policy {
            public: Action::Allow,
            internal: Action::Allow,
            confidential: Action::Redact,
            secret: Action::Drop,
        }
    }
}

impl Policy {
    /// The action for `level`. SECRET material never reaches training, even redacted
    /// (a redacted secret record still carries its context): for [`Level::Secret`] this
    /// returns [`Action::Fail`] if the policy says `fail`, otherwise [`Action::Drop`],
    /// whatever `secret` is set to.
    pub fn action_for(&self, level: Level) -> Action {
        match level {
            Level::Public => self.public,
            Level::Internal => self.internal,
            Level::Confidential => self.confidential,
            Level::Secret => match self.secret {
                Action::Fail => Action::Fail,
                _ => Action::Drop,
            },
        }
    }
}

/// A level assigned to records whose source (path or dataset name) matches a glob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRule {
    /// `*` matches within one path segment, `**` across segments (`hr/**/*.csv`).
    pub glob: String,
    /// Level for matching sources.
    pub level: Level,
}

impl SourceRule {
    /// Whether `source` matches this rule's glob.
    pub fn matches(&self, source: &str) -> bool {
        glob_match(self.glob.as_bytes(), source.as_bytes())
    }
}

/// Minimal glob: `*` = any run without `/`, `**` = any run including `/` (and `**/` may
/// match nothing), `?` = one non-`/` byte; everything else literal.
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some(b'*') if pat.get(1) == Some(&b'*') => {
            let rest = &pat[2..];
            let rest_no_slash = rest.strip_prefix(b"/").unwrap_or(rest);
            (0..=s.len()).any(|i| glob_match(rest, &s[i..]) || glob_match(rest_no_slash, &s[i..]))
        }
        Some(b'*') => {
            let rest = &pat[1..];
            for i in 0..=s.len() {
                if glob_match(rest, &s[i..]) {
                    return true;
                }
                if s.get(i) == Some(&b'/') {
                    break;
                }
            }
            false
        }
        Some(b'?') => s.first().is_some_and(|&c| c != b'/') && glob_match(&pat[1..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && glob_match(&pat[1..], &s[1..]),
    }
}

/// A record's level and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// The highest level any signal gave.
    pub level: Level,
    /// One entry per contributing signal, e.g. `"marking: VERTRAULICH"`.
    pub reasons: Vec<String>,
}

/// How a marking pattern's match is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MarkForm {
    /// An upper-case word: counts only where it stands out (its line has lower-case
    /// letters, or the line is a short banner), so all-caps prose does not mark a record.
    UpperWord,
    /// An explicit form (label, brackets, `//` banner, fixed phrase); group 1, if any, holds
    /// the level name.
    Explicit,
}

/// Most words a line may have and still count as a banner ("STRENG GEHEIM", "SECRET//X").
const BANNER_MAX_WORDS: usize = 6;

/// Markings recognised in text, with the level each implies. Prose such as "the secret to
/// good bread" or "internal combustion" never matches: every pattern needs marking form.
fn markings() -> &'static [(Regex, Level, &'static str, MarkForm)] {
    static M: OnceLock<Vec<(Regex, Level, &'static str, MarkForm)>> = OnceLock::new();
    M.get_or_init(|| {
        use MarkForm::{Explicit, UpperWord};
        let table: [(&str, Level, &str, MarkForm); 10] = [
            (r"\b(?:STRENG GEHEIM|TOP SECRET)\b", Level::Secret, "STRENG GEHEIM/TOP SECRET", UpperWord),
            (r"\b(?:GEHEIM|SECRET)\b", Level::Secret, "SECRET", UpperWord),
            (r"\b(?:VERTRAULICH|CONFIDENTIAL)\b", Level::Confidential, "CONFIDENTIAL", UpperWord),
            (r"\bINTERNAL(?:\s+USE)?\s+ONLY\b|\bINTERN\b", Level::Internal, "INTERNAL", UpperWord),
            (
                r"(?i)\bnur\s+f(?:ü|ue)r\s+den\s+dienstgebrauch\b|\bVS-NfD\b",
                Level::Confidential,
                "NUR FÜR DEN DIENSTGEBRAUCH",
                Explicit,
            ),
            (r"(?i)\binternal\s+use\s+only\b", Level::Internal, "INTERNAL USE ONLY", Explicit),
            (
                r"(?im)^\W*(?:classification|klassifizierung|einstufung|sensitivity|schutzstufe|classified)\s*[:=]\s*(public|öffentlich|oeffentlich|internal|intern|confidential|vertraulich|secret|geheim)\b",
                Level::Public,
                "label",
                Explicit,
            ),
            (r"(?i)\[(public|internal|confidential|secret|intern|vertraulich|geheim)\]", Level::Public, "bracket", Explicit),
            (r"(?i)\b(secret|confidential|internal)//", Level::Public, "banner", Explicit),
            (r"(?i)\b(?:top|streng)\s+(secret|geheim)//", Level::Public, "banner", Explicit),
        ];
        table
            .iter()
            .map(|(p, l, n, f)| (Regex::new(p).unwrap_or_else(|e| panic!("marking pattern {n}: {e}")), *l, *n, *f))
            .collect()
    })
}

/// The line of `text` around byte range `a..b`.
fn line_around(text: &str, a: usize, b: usize) -> &str {
    let start = text[..a].rfind('\n').map_or(0, |i| i + 1);
    let end = text[b..].find('\n').map_or(text.len(), |i| b + i);
    &text[start..end]
}

/// Markings found in `text`: (level, reason).
fn text_markings(text: &str) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    for (re, level, name, form) in markings() {
        for caps in re.captures_iter(text) {
            let Some(m) = caps.get(0) else { continue };
            if *form == MarkForm::UpperWord {
                let line = line_around(text, m.start(), m.end());
                let has_lower = line.chars().any(char::is_lowercase);
                if !has_lower && line.split_whitespace().count() > BANNER_MAX_WORDS {
                    continue; // all-caps prose, not a marking
                }
            }
            // Label/bracket/banner forms carry the level name in group 1.
            let (lvl, shown) = match caps.get(1) {
                Some(g) => match g.as_str().parse::<Level>() {
                    Ok(l) => (l, g.as_str().to_uppercase()),
                    Err(_) => continue,
                },
                None => (*level, (*name).to_string()),
            };
            out.push((lvl, format!("marking: {shown}")));
            break;
        }
    }
    out
}

/// Classify a record. `level` is the maximum of: the record's `label`, markings in `text`,
/// the first matching [`SourceRule`] per rule, and each finding's [`Finding::severity`];
/// every contributing signal adds a reason. Without any signal the level is PUBLIC.
pub fn classify(
    label: Option<Level>,
    text: &str,
    source: &str,
    rules: &[SourceRule],
    findings: &[Finding],
) -> Classification {
    let mut level = Level::Public;
    let mut reasons = Vec::new();
    let mut raise = |l: Level, why: String, reasons: &mut Vec<String>| {
        level = level.max(l);
        reasons.push(why);
    };
    if let Some(l) = label {
        raise(l, format!("label: {l}"), &mut reasons);
    }
    for (l, why) in text_markings(text) {
        raise(l, why, &mut reasons);
    }
    for rule in rules.iter().filter(|r| r.matches(source)) {
        raise(
            rule.level,
            format!(
                "source {source:?} matches {:?} -> {}",
                rule.glob, rule.level
            ),
            &mut reasons,
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in findings {
        if seen.insert((f.kind.as_str(), f.rule.as_str())) {
            raise(
                f.severity(),
                format!("finding: {} ({}) -> {}", f.kind, f.rule, f.severity()),
                &mut reasons,
            );
        }
    }
    Classification { level, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_secret_is_not_a_marking() {
        let c = classify(
            None,
            "The secret to good bread is time. It is internal knowledge.",
            "x",
            &[],
            &[],
        );
        assert_eq!(c.level, Level::Public, "{:?}", c.reasons);
    }

    #[test]
    fn all_caps_prose_is_not_a_marking() {
        let c = classify(
            None,
            "THE SECRET TO GOOD BREAD IS TIME AND A HOT OVEN",
            "x",
            &[],
            &[],
        );
        assert_eq!(c.level, Level::Public, "{:?}", c.reasons);
        let c = classify(
            None,
            "This memo is SECRET and must not leave the office.",
            "x",
            &[],
            &[],
        );
        assert_eq!(c.level, Level::Secret, "{:?}", c.reasons);
    }

    #[test]
    fn markings_in_marking_form_count() {
        for (text, want) in [
            ("VERTRAULICH - nur intern", Level::Confidential),
            ("Classification: Secret\nbody", Level::Secret),
            ("[INTERNAL] roadmap", Level::Internal),
            ("TOP SECRET//NOFORN", Level::Secret),
            ("Nur für den Dienstgebrauch", Level::Confidential),
            ("STRENG GEHEIM", Level::Secret),
            ("INTERNAL ONLY", Level::Internal),
        ] {
            assert_eq!(classify(None, text, "x", &[], &[]).level, want, "{text}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"hr/**/*.csv", b"hr/2024/q1/pay.csv"));
        assert!(glob_match(b"hr/**/*.csv", b"hr/pay.csv"));
        assert!(!glob_match(b"hr/*.csv", b"hr/2024/pay.csv"));
        assert!(glob_match(b"*secret*", b"my-secret-data"));
    }

    #[test]
    fn secret_is_never_allowed() {
        let p = Policy {
            secret: Action::Allow,
            ..Policy::default()
        };
        assert_eq!(p.action_for(Level::Secret), Action::Drop);
        let p = Policy {
            secret: Action::Fail,
            ..Policy::default()
        };
        assert_eq!(p.action_for(Level::Secret), Action::Fail);
    }

    #[test]
    fn level_parse_and_serde() {
        assert_eq!("vertraulich".parse::<Level>(), Ok(Level::Confidential));
        assert_eq!("Öffentlich".parse::<Level>(), Ok(Level::Public));
        assert_eq!("OEFFENTLICH".parse::<Level>(), Ok(Level::Public));
        assert!("topsecret".parse::<Level>().is_err());
        assert_eq!(
            serde_json::to_string(&Level::Secret).ok().as_deref(),
            Some("\"SECRET\"")
        );
        assert_eq!(
            serde_json::from_str::<Level>("\"geheim\"").ok(),
            Some(Level::Secret)
        );
    }
}
