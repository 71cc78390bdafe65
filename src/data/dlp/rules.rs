//! The DLP rules file: its serde schema, validation on load (errors name the file, the rule
//! id and the key) and compilation into matchers.

use std::path::{Path, PathBuf};

use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

use super::checks::Validator;
use super::{Category, DlpError};

/// The only rules-file schema version this build understands.
pub const RULES_VERSION: u32 = 1;
/// Score a rule's finding gets when the rule does not say.
pub const DEFAULT_SCORE: f32 = 0.9;
/// Lowest score a finding may have and still be reported, when the rule does not say.
pub const DEFAULT_MIN_SCORE: f32 = 0.5;
/// Bytes around a keyword hit searched by the rule's regex, when the rule does not say.
pub const DEFAULT_WINDOW: usize = 256;
/// Bytes either side of a match searched for context words, when the rule does not say.
pub const DEFAULT_CONTEXT_WINDOW: usize = 64;
/// Score added when a context word is near, when the rule does not say.
pub const DEFAULT_CONTEXT_BOOST: f32 = 0.3;
/// Score removed when a negative context word is near, when the rule does not say.
pub const DEFAULT_NEGATIVE_PENALTY: f32 = 0.4;
/// Compiled size cap for one rule's regex (bytes); large enough for gitleaks' patterns.
const REGEX_SIZE_LIMIT: usize = 64 << 20;

/// What an allowlist entry's regexes are matched against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllowTarget {
    /// The extracted secret (capture group).
    #[default]
    Secret,
    /// The whole regex match.
    Match,
    /// The line(s) containing the match.
    Line,
}

/// `[allowlist]` or `[[rules.allowlist]]`: matches that are known not to be secrets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistSpec {
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// What `regexes` are tested against.
    #[serde(default)]
    pub target: AllowTarget,
    /// A match of any of these drops the finding.
    #[serde(default)]
    pub regexes: Vec<String>,
    /// A secret containing any of these (case-insensitive) is dropped.
    #[serde(default)]
    pub stopwords: Vec<String>,
}

/// One `[[rules]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique rule id, reported in findings.
    pub id: String,
    /// Entity kind (`aws_access_key`, `email`, ...); defaults to the id with `-` as `_`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `secret` or `pii`.
    pub category: Category,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The pattern (Rust `regex` syntax, ASCII semantics for classes and `\b`).
    pub regex: String,
    /// Capture group holding the secret; default: first group that took part, else the match.
    #[serde(default)]
    pub secret_group: Option<usize>,
    /// Minimum Shannon entropy (bits per byte) of the secret; must be exceeded.
    #[serde(default)]
    pub entropy: Option<f32>,
    /// Secret must contain an ASCII digit.
    #[serde(default)]
    pub require_digit: bool,
    /// Secret length bounds in bytes.
    #[serde(default)]
    pub min_len: Option<usize>,
    /// Secret length bounds in bytes.
    #[serde(default)]
    pub max_len: Option<usize>,
    /// Case-insensitive literals; the regex only runs near one of them.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Without keywords: run only near runs of at least this many decimal digits.
    #[serde(default)]
    pub digits: Option<usize>,
    /// Without keywords: run only near runs with at least this many colons (IPv6).
    #[serde(default)]
    pub colons: Option<usize>,
    /// With `digits`: the run must also contain at least this many dots (IPv4).
    #[serde(default)]
    pub dots: Option<usize>,
    /// Bytes around a trigger that the regex searches.
    #[serde(default)]
    pub window: Option<usize>,
    /// Base score in [0, 1].
    #[serde(default)]
    pub score: Option<f32>,
    /// Findings scoring below this are dropped.
    #[serde(default)]
    pub min_score: Option<f32>,
    /// Structural check on the secret.
    #[serde(default)]
    pub validator: Option<Validator>,
    /// Words near the match that raise the score.
    #[serde(default)]
    pub context: Vec<String>,
    /// How much a context word raises the score.
    #[serde(default)]
    pub context_boost: Option<f32>,
    /// Drop the finding unless a context word is near.
    #[serde(default)]
    pub require_context: bool,
    /// Words near the match that lower the score.
    #[serde(default)]
    pub negative_context: Vec<String>,
    /// How much a negative context word lowers the score.
    #[serde(default)]
    pub negative_penalty: Option<f32>,
    /// Bytes either side of the match searched for context words.
    #[serde(default)]
    pub context_window: Option<usize>,
    /// ASCII characters that must not directly follow the match (e.g. `"A-Za-z0-9_-"`).
    #[serde(default)]
    pub not_followed_by: Option<String>,
    /// ASCII characters that must not directly precede the match.
    #[serde(default)]
    pub not_preceded_by: Option<String>,
    /// Secret containing any of these (case-insensitive) is dropped.
    #[serde(default)]
    pub stopwords: Vec<String>,
    /// Rule-specific allowlists.
    #[serde(default)]
    pub allowlist: Vec<AllowlistSpec>,
    /// When the validator rejects a match, retry its prefixes that end before a space or
    /// dash, longest first (greedy patterns such as IBAN groups followed by other words).
    #[serde(default)]
    pub shrink: bool,
    /// Drop the match when these capture groups hold the same text (`user:user@host`).
    #[serde(default)]
    pub distinct_groups: Vec<usize>,
}

/// A whole rules file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// Schema version; must be [`RULES_VERSION`].
    pub version: u32,
    /// Score at or above which a finding blocks (CLI exit code, classification).
    #[serde(default)]
    pub block_threshold: Option<f32>,
    /// Global allowlist applied to every rule's secret.
    #[serde(default)]
    pub allowlist: Option<AllowlistSpec>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// A compiled allowlist.
#[derive(Debug, Clone)]
pub(crate) struct Allowlist {
    pub target: AllowTarget,
    pub regexes: Vec<Regex>,
    pub stopwords: Vec<String>,
}

impl Allowlist {
    /// Whether `target_text` (already chosen per `self.target`) and `secret` are allowed.
    pub fn allows(&self, target_text: &[u8], secret_lower: &str) -> bool {
        self.regexes.iter().any(|r| r.is_match(target_text))
            || self
                .stopwords
                .iter()
                .any(|w| secret_lower.contains(w.as_str()))
    }
}

/// An ASCII byte set parsed from `"A-Za-z0-9_-"`.
#[derive(Debug, Clone)]
pub(crate) struct ByteSet([bool; 128]);

impl ByteSet {
    fn parse(spec: &str) -> Option<ByteSet> {
        let b = spec.as_bytes();
        if !spec.is_ascii() {
            return None;
        }
        let mut set = [false; 128];
        let mut i = 0;
        while i < b.len() {
            if i + 2 < b.len() && b[i + 1] == b'-' {
                let (lo, hi) = (b[i], b[i + 2]);
                if lo > hi {
                    return None;
                }
                (lo..=hi).for_each(|c| set[usize::from(c)] = true);
                i += 3;
            } else {
                set[usize::from(b[i])] = true;
                i += 1;
            }
        }
        Some(ByteSet(set))
    }

    pub fn contains(&self, b: u8) -> bool {
        b < 128 && self.0[usize::from(b)]
    }
}

/// How a rule decides where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Near keyword hits.
    Keywords,
    /// Near numeric runs with at least this many digits (and dots).
    Digits(usize, usize),
    /// Near runs with at least this many colons.
    Colons(usize),
    /// Over the whole text.
    Always,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub id: String,
    pub kind: String,
    pub category: Category,
    pub regex: Regex,
    pub secret_group: Option<usize>,
    pub entropy: Option<f32>,
    pub require_digit: bool,
    pub min_len: usize,
    pub max_len: usize,
    pub keywords: Vec<String>,
    pub trigger: Trigger,
    pub window: usize,
    pub score: f32,
    pub min_score: f32,
    pub validator: Option<Validator>,
    pub context: Vec<String>,
    pub context_boost: f32,
    pub require_context: bool,
    pub negative_context: Vec<String>,
    pub negative_penalty: f32,
    pub context_window: usize,
    pub not_followed_by: Option<ByteSet>,
    pub not_preceded_by: Option<ByteSet>,
    pub stopwords: Vec<String>,
    pub allowlists: Vec<Allowlist>,
    pub shrink: bool,
    pub distinct_groups: Vec<usize>,
}

fn rule_err(path: &Path, rule: &str, key: &str, message: impl Into<String>) -> DlpError {
    DlpError::Rule {
        path: path.to_path_buf(),
        rule: rule.to_string(),
        key: key.to_string(),
        message: message.into(),
    }
}

fn compile_regex(path: &Path, rule: &str, key: &str, pattern: &str) -> Result<Regex, DlpError> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| rule_err(path, rule, key, e.to_string()))
}

/// Compile an allowlist spec; `owner` names the rule (or `[allowlist]`) in errors.
pub(crate) fn compile_allowlist(
    path: &Path,
    owner: &str,
    spec: &AllowlistSpec,
) -> Result<Allowlist, DlpError> {
    let regexes = spec
        .regexes
        .iter()
        .map(|r| compile_regex(path, owner, "allowlist.regexes", r))
        .collect::<Result<Vec<_>, _>>()?;
    if spec.stopwords.iter().any(String::is_empty) {
        return Err(rule_err(
            path,
            owner,
            "allowlist.stopwords",
            "empty stopword",
        ));
    }
    Ok(Allowlist {
        target: spec.target,
        regexes,
        stopwords: spec
            .stopwords
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
    })
}

fn check_unit(path: &Path, rule: &str, key: &str, v: Option<f32>) -> Result<(), DlpError> {
    match v {
        Some(x) if !(0.0..=1.0).contains(&x) || x.is_nan() => Err(rule_err(
            path,
            rule,
            key,
            format!("must be within 0..=1 (got {x})"),
        )),
        _ => Ok(()),
    }
}

/// Validate and compile one rule spec from `path`.
pub(crate) fn compile_rule(path: &Path, spec: &RuleSpec) -> Result<Rule, DlpError> {
    let id = spec.id.as_str();
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(rule_err(
            path,
            id,
            "id",
            "must be non-empty ASCII letters, digits, '-', '_', '.', ':'",
        ));
    }
    check_unit(path, id, "score", spec.score)?;
    check_unit(path, id, "min_score", spec.min_score)?;
    check_unit(path, id, "context_boost", spec.context_boost)?;
    check_unit(path, id, "negative_penalty", spec.negative_penalty)?;
    if let Some(e) = spec.entropy
        && !(0.0..=8.0).contains(&e)
    {
        return Err(rule_err(
            path,
            id,
            "entropy",
            format!("must be within 0..=8 bits per byte (got {e})"),
        ));
    }
    if let (Some(lo), Some(hi)) = (spec.min_len, spec.max_len)
        && lo > hi
    {
        return Err(rule_err(
            path,
            id,
            "min_len",
            format!("{lo} exceeds max_len {hi}"),
        ));
    }
    let regex = compile_regex(path, id, "regex", &spec.regex)?;
    if let Some(g) = spec.secret_group
        && g >= regex.captures_len()
    {
        return Err(rule_err(
            path,
            id,
            "secret_group",
            format!(
                "group {g} does not exist (regex has {} groups)",
                regex.captures_len() - 1
            ),
        ));
    }
    if let Some(&g) = spec
        .distinct_groups
        .iter()
        .find(|&&g| g >= regex.captures_len())
    {
        return Err(rule_err(
            path,
            id,
            "distinct_groups",
            format!("group {g} does not exist"),
        ));
    }
    if spec.keywords.iter().any(String::is_empty) {
        return Err(rule_err(path, id, "keywords", "empty keyword"));
    }
    if spec.dots.is_some() && spec.digits.is_none() {
        return Err(rule_err(
            path,
            id,
            "dots",
            "only valid together with digits",
        ));
    }
    let trigger = match (spec.keywords.is_empty(), spec.digits, spec.colons) {
        (false, None, None) => Trigger::Keywords,
        (true, Some(n), None) => Trigger::Digits(n, spec.dots.unwrap_or(0)),
        (true, None, Some(n)) => Trigger::Colons(n),
        (true, None, None) => Trigger::Always,
        _ => {
            return Err(rule_err(
                path,
                id,
                "keywords",
                "use exactly one of keywords, digits, colons",
            ));
        }
    };
    let set = |key: &str, v: &Option<String>| -> Result<Option<ByteSet>, DlpError> {
        v.as_deref()
            .map(|s| {
                ByteSet::parse(s)
                    .ok_or_else(|| rule_err(path, id, key, format!("bad ASCII set {s:?}")))
            })
            .transpose()
    };
    let lower = |v: &[String]| v.iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
    let allowlists = spec
        .allowlist
        .iter()
        .map(|a| compile_allowlist(path, id, a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rule {
        id: spec.id.clone(),
        kind: spec
            .kind
            .clone()
            .unwrap_or_else(|| spec.id.replace('-', "_")),
        category: spec.category,
        regex,
        secret_group: spec.secret_group,
        entropy: spec.entropy,
        require_digit: spec.require_digit,
        min_len: spec.min_len.unwrap_or(1),
        max_len: spec.max_len.unwrap_or(usize::MAX),
        keywords: lower(&spec.keywords),
        trigger,
        window: spec.window.unwrap_or(DEFAULT_WINDOW),
        score: spec.score.unwrap_or(DEFAULT_SCORE),
        min_score: spec.min_score.unwrap_or(DEFAULT_MIN_SCORE),
        validator: spec.validator,
        context: lower(&spec.context),
        context_boost: spec.context_boost.unwrap_or(DEFAULT_CONTEXT_BOOST),
        require_context: spec.require_context,
        negative_context: lower(&spec.negative_context),
        negative_penalty: spec.negative_penalty.unwrap_or(DEFAULT_NEGATIVE_PENALTY),
        context_window: spec.context_window.unwrap_or(DEFAULT_CONTEXT_WINDOW),
        not_followed_by: set("not_followed_by", &spec.not_followed_by)?,
        not_preceded_by: set("not_preceded_by", &spec.not_preceded_by)?,
        stopwords: lower(&spec.stopwords),
        allowlists,
        shrink: spec.shrink,
        distinct_groups: spec.distinct_groups.clone(),
    })
}

/// Parse a rules file's text; `path` is only used in messages.
pub(crate) fn parse_rules(path: &Path, text: &str) -> Result<RulesFile, DlpError> {
    let file: RulesFile = toml::from_str(text).map_err(|e| DlpError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if file.version != RULES_VERSION {
        return Err(DlpError::Version {
            path: path.to_path_buf(),
            version: file.version,
        });
    }
    if let Some(t) = file.block_threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(DlpError::Parse {
            path: path.to_path_buf(),
            message: format!("block_threshold must be within 0..=1 (got {t})"),
        });
    }
    Ok(file)
}

/// Read and parse a rules file from disk.
pub(crate) fn read_rules(path: &Path) -> Result<RulesFile, DlpError> {
    let text = std::fs::read_to_string(path).map_err(|source| DlpError::Io {
        path: PathBuf::from(path),
        source,
    })?;
    parse_rules(path, &text)
}
