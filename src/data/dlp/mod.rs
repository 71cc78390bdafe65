//! DLP scanner: finds secrets (cloud/SaaS keys, private keys, tokens, passwords) and PII
//! (e-mail, phone, IBAN, card, SSN, Steuer-ID, IP, date of birth) in text, and redacts them.
//!
//! Rules live in a TOML data file (bundled: `rules.toml` plus `gitleaks_rules.toml`, ported
//! from gitleaks' default config); users extend them with [`Scanner::with_extra_rules`].
//!
//! One pass of an Aho-Corasick automaton over all rule keywords (plus one byte pass that
//! finds numeric runs for keyword-less PII rules) decides which rules run where; each rule's
//! regex then only searches the small windows around its triggers.
//!
//! Offsets in [`Finding`] are **byte offsets** into the scanned `&str`, always on UTF-8
//! character boundaries (`&text[f.start..f.end]` is the entity).

pub mod checks;
pub mod rules;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde::{Deserialize, Serialize};

use crate::data::classify::Level;
use checks::Verdict;
use rules::{AllowTarget, Allowlist, Rule, RulesFile, Trigger};

/// Bundled rules written for this product (PII and providers gitleaks does not cover).
const BUILTIN_RULES: &str = include_str!("rules.toml");
/// Bundled rules ported from gitleaks' default config by `gen_gitleaks_rules.py`.
const BUILTIN_GITLEAKS_RULES: &str = include_str!("gitleaks_rules.toml");
/// Block threshold when no rules file sets one.
pub const DEFAULT_BLOCK_THRESHOLD: f32 = 0.5;
/// How far (bytes) a search window is stretched toward the enclosing line's ends.
const LINE_EXTEND_CAP: usize = 256;
/// How far (bytes) a match that reaches its window's end may be followed past it.
const MAX_MATCH_EXTEND: usize = 64 * 1024;
/// Most consecutive separator bytes inside one numeric run (`"4111 1111"`, `"::"`).
const MAX_RUN_SEPARATORS: usize = 2;

/// Broad family of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Credentials: keys, tokens, passwords, private keys.
    Secret,
    /// Personal data: e-mail, phone, IBAN, card, national ids, IP, date of birth.
    Pii,
}

/// One detected entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Entity kind, e.g. `"aws_access_key"`, `"email"`, `"iban"`.
    pub kind: String,
    /// Secret or PII.
    pub category: Category,
    /// Byte offset (inclusive) into the scanned text, on a char boundary.
    pub start: usize,
    /// Byte offset (exclusive) into the scanned text, on a char boundary.
    pub end: usize,
    /// Confidence in 0..=1 after validators and context words.
    pub score: f32,
    /// Id of the rule that produced it.
    pub rule: String,
}

impl Finding {
    /// Sensitivity level this finding alone implies: credentials and private keys are
    /// SECRET, personal data CONFIDENTIAL, IP addresses INTERNAL.
    pub fn severity(&self) -> Level {
        match self.category {
            Category::Secret => Level::Secret,
            Category::Pii if self.kind.starts_with("ip_") => Level::Internal,
            Category::Pii => Level::Confidential,
        }
    }

    /// Placeholder type used by [`redact`]: `"EMAIL"`, `"API_KEY"`, ...
    pub fn placeholder_type(&self) -> &str {
        let k = self.kind.as_str();
        match self.category {
            Category::Pii => match k {
                "email" => "EMAIL",
                "phone" => "PHONE",
                "iban" => "IBAN",
                "credit_card" => "CARD",
                "us_ssn" => "SSN",
                "de_tax_id" => "TAX_ID",
                "date_of_birth" => "DOB",
                _ if k.starts_with("ip_") => "IP",
                _ => "PII",
            },
            Category::Secret => {
                if k.contains("private_key") {
                    "PRIVATE_KEY"
                } else if k.contains("jwt") {
                    "JWT"
                } else if k.contains("password")
                    || k.contains("basic_auth")
                    || k.contains("connection_string")
                {
                    "PASSWORD"
                } else {
                    "API_KEY"
                }
            }
        }
    }
}

/// Errors loading or validating rules.
#[derive(Debug, thiserror::Error)]
pub enum DlpError {
    /// The rules file could not be read.
    #[error("cannot read rules file {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for the schema (message carries line and key).
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What is wrong, with line/column from the TOML parser.
        message: String,
    },
    /// Unsupported schema version.
    #[error(
        "{path}: unsupported rules version {version} (this build reads version {})",
        rules::RULES_VERSION
    )]
    Version {
        /// File.
        path: PathBuf,
        /// Version found.
        version: u32,
    },
    /// A rule is invalid.
    #[error("{path}: rule `{rule}`: `{key}`: {message}")]
    Rule {
        /// File.
        path: PathBuf,
        /// Rule id.
        rule: String,
        /// Offending key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Two rules in one file share an id.
    #[error("{path}: duplicate rule id `{rule}`")]
    DuplicateRule {
        /// File.
        path: PathBuf,
        /// Rule id.
        rule: String,
    },
    /// The keyword automaton could not be built.
    #[error("keyword prefilter: {0}")]
    Prefilter(String),
}

/// A compiled rule set ready to scan text. Cheap to share across threads (`&Scanner`).
#[derive(Debug, Clone)]
pub struct Scanner {
    /// The parsed files this scanner was compiled from, in load order.
    sources: Vec<(PathBuf, RulesFile)>,
    rules: Vec<Rule>,
    keyword_ac: AhoCorasick,
    keyword_rules: Vec<Vec<usize>>,
    numeric_rules: Vec<usize>,
    always_rules: Vec<usize>,
    block_threshold: f32,
}

/// Rule sources before compilation: kept so extra files can be layered on.
fn compile_files(files: &[(PathBuf, RulesFile)]) -> Result<Scanner, DlpError> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut block_threshold = DEFAULT_BLOCK_THRESHOLD;
    for (path, file) in files {
        if let Some(t) = file.block_threshold {
            block_threshold = t;
        }
        // A file's top-level allowlist applies to the rules of that file.
        let file_allow = match &file.allowlist {
            Some(a) => vec![rules::compile_allowlist(path, "[allowlist]", a)?],
            None => Vec::new(),
        };
        let mut seen_here = std::collections::HashSet::new();
        for spec in &file.rules {
            if !seen_here.insert(spec.id.as_str()) {
                return Err(DlpError::DuplicateRule {
                    path: path.clone(),
                    rule: spec.id.clone(),
                });
            }
            let mut rule = rules::compile_rule(path, spec)?;
            rule.allowlists.extend(file_allow.iter().cloned());
            // A later file's rule with an existing id replaces the earlier one.
            match index.get(&rule.id) {
                Some(&i) => rules[i] = rule,
                None => {
                    index.insert(rule.id.clone(), rules.len());
                    rules.push(rule);
                }
            }
        }
    }
    let mut keywords: Vec<String> = Vec::new();
    let mut kw_index: HashMap<String, usize> = HashMap::new();
    let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
    let mut numeric_rules = Vec::new();
    let mut always_rules = Vec::new();
    for (ri, rule) in rules.iter().enumerate() {
        match rule.trigger {
            Trigger::Keywords => {
                for kw in &rule.keywords {
                    let ki = *kw_index.entry(kw.clone()).or_insert_with(|| {
                        keywords.push(kw.clone());
                        keyword_rules.push(Vec::new());
                        keywords.len() - 1
                    });
                    if !keyword_rules[ki].contains(&ri) {
                        keyword_rules[ki].push(ri);
                    }
                }
            }
            Trigger::Digits(..) | Trigger::Colons(_) => numeric_rules.push(ri),
            Trigger::Always => always_rules.push(ri),
        }
    }
    let keyword_ac = AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&keywords)
        .map_err(|e| DlpError::Prefilter(e.to_string()))?;
    Ok(Scanner {
        sources: files.to_vec(),
        rules,
        keyword_ac,
        keyword_rules,
        numeric_rules,
        always_rules,
        block_threshold,
    })
}

/// A finding before overlap resolution.
struct Candidate {
    start: usize,
    end: usize,
    score: f32,
    rule: usize,
}

/// Numeric run found by the byte pass.
struct NumericRun {
    start: usize,
    end: usize,
    digits: usize,
    colons: usize,
    dots: usize,
}

/// Byte classes of the numeric-run pass.
const CLASS_OTHER: u8 = 0;
const CLASS_DIGIT: u8 = 1;
const CLASS_HEX: u8 = 2;
const CLASS_SEP: u8 = 3;
const CLASS_COLON: u8 = 4;

const BYTE_CLASS: [u8; 256] = {
    let mut t = [CLASS_OTHER; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'0'..=b'9' => CLASS_DIGIT,
            b'a'..=b'f' | b'A'..=b'F' => CLASS_HEX,
            b':' => CLASS_COLON,
            b' ' | b'.' | b'-' | b'/' | b'(' | b')' | b'+' | b'%' => CLASS_SEP,
            _ => CLASS_OTHER,
        };
        b += 1;
    }
    t
};

/// Runs of digits (and hex digits) joined by short separator runs, starting at a digit or
/// colon, with digit and colon counts. Rules pad the run with their `window`.
fn numeric_runs(bytes: &[u8], mut f: impl FnMut(NumericRun)) {
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        let c = BYTE_CLASS[usize::from(bytes[i])];
        if c != CLASS_DIGIT && c != CLASS_COLON {
            i += 1;
            continue;
        }
        let start = i;
        let (mut digits, mut colons, mut dots, mut seps, mut last_tok) =
            (0usize, 0usize, 0usize, 0usize, i);
        while i < n {
            match BYTE_CLASS[usize::from(bytes[i])] {
                CLASS_DIGIT => {
                    digits += 1;
                    seps = 0;
                    last_tok = i + 1;
                }
                CLASS_HEX => {
                    seps = 0;
                    last_tok = i + 1;
                }
                CLASS_COLON => {
                    seps += 1;
                    colons += 1;
                    last_tok = i + 1;
                    if seps > MAX_RUN_SEPARATORS {
                        break;
                    }
                }
                CLASS_SEP => {
                    seps += 1;
                    dots += usize::from(bytes[i] == b'.');
                    if seps > MAX_RUN_SEPARATORS {
                        break;
                    }
                }
                _ => break,
            }
            i += 1;
        }
        if digits > 0 || colons > 1 {
            f(NumericRun {
                start,
                end: last_tok.max(start + 1),
                digits,
                colons,
                dots,
            });
        }
    }
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Stretch `[a, b)` toward the enclosing line's ends (at most [`LINE_EXTEND_CAP`] bytes).
fn extend_to_lines(bytes: &[u8], a: usize, b: usize) -> (usize, usize) {
    let lo = a.saturating_sub(LINE_EXTEND_CAP);
    let start = bytes[lo..a]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(lo, |p| lo + p + 1);
    let hi = (b + LINE_EXTEND_CAP).min(bytes.len());
    let end = bytes[b..hi]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(hi, |p| b + p);
    (start, end)
}

fn merge_windows(w: &mut Vec<(usize, usize)>) {
    w.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(w.len());
    for &(a, b) in w.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *w = out;
}

/// Whether `hay` contains any of `words_lower` (ASCII case-insensitive).
fn any_word(hay: &str, words_lower: &[String]) -> bool {
    let lower = hay.to_ascii_lowercase();
    words_lower.iter().any(|w| lower.contains(w.as_str()))
}

impl Scanner {
    /// The bundled rules (`rules.toml` and `gitleaks_rules.toml`). Compiled once per
    /// process and cloned (cheap: compiled regexes are shared). The bundled files are
    /// validated by the test suite; an invalid bundled file is a build defect and panics.
    pub fn builtin() -> Scanner {
        static BUILTIN: std::sync::OnceLock<Scanner> = std::sync::OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                Self::builtin_files()
                    .and_then(|files| compile_files(&files))
                    .unwrap_or_else(|e| panic!("bundled DLP rules are invalid: {e}"))
            })
            .clone()
    }

    fn builtin_files() -> Result<Vec<(PathBuf, RulesFile)>, DlpError> {
        let gl = PathBuf::from("<builtin>/gitleaks_rules.toml");
        let own = PathBuf::from("<builtin>/rules.toml");
        Ok(vec![
            (gl.clone(), rules::parse_rules(&gl, BUILTIN_GITLEAKS_RULES)?),
            (own.clone(), rules::parse_rules(&own, BUILTIN_RULES)?),
        ])
    }

    /// Only the rules in `path` (validated; errors name the file, rule id and key).
    pub fn from_rules_file(path: &Path) -> Result<Scanner, DlpError> {
        compile_files(&[(path.to_path_buf(), rules::read_rules(path)?)])
    }

    /// This scanner's rules plus those in `path` (validated like [`Scanner::from_rules_file`]);
    /// a rule there with an existing id replaces it, and its `block_threshold`, if set, wins.
    pub fn with_extra_rules(self, path: &Path) -> Result<Scanner, DlpError> {
        let extra = rules::read_rules(path)?;
        let mut files = self.sources;
        files.push((path.to_path_buf(), extra));
        compile_files(&files)
    }

    /// Score at or above which a finding should block the record.
    pub fn block_threshold(&self) -> f32 {
        self.block_threshold
    }

    /// Number of compiled rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Ids of the compiled rules, in load order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// Find all entities in `text`: non-overlapping, sorted by start, each scoring at least
    /// its rule's `min_score`. Offsets are byte offsets on char boundaries.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let bytes = text.as_bytes();
        let mut windows: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.rules.len()];
        for m in self.keyword_ac.find_overlapping_iter(bytes) {
            for &ri in &self.keyword_rules[m.pattern().as_usize()] {
                let w = self.rules[ri].window;
                windows[ri].push((m.start().saturating_sub(w), (m.end() + w).min(bytes.len())));
            }
        }
        if !self.numeric_rules.is_empty() {
            numeric_runs(bytes, |run| {
                for &ri in &self.numeric_rules {
                    let rule = &self.rules[ri];
                    let fires = match rule.trigger {
                        Trigger::Digits(n, d) => run.digits >= n && run.dots >= d,
                        Trigger::Colons(n) => run.colons >= n,
                        _ => false,
                    };
                    if fires {
                        windows[ri].push((
                            run.start.saturating_sub(rule.window),
                            (run.end + rule.window).min(bytes.len()),
                        ));
                    }
                }
            });
        }
        for &ri in &self.always_rules {
            windows[ri].push((0, bytes.len()));
        }
        let mut candidates = Vec::new();
        for (ri, ws) in windows.iter_mut().enumerate() {
            if ws.is_empty() {
                continue;
            }
            let rule = &self.rules[ri];
            merge_windows(ws);
            // Keyword windows grow to whole lines (assignments, PEM blocks, YAML); numeric
            // windows stay tight, their rules check boundaries themselves.
            if rule.trigger == Trigger::Keywords {
                for w in ws.iter_mut() {
                    *w = extend_to_lines(bytes, w.0, w.1);
                }
                merge_windows(ws);
            }
            for &(a, b) in ws.iter() {
                let (a, b) = (floor_boundary(text, a), ceil_boundary(text, b));
                if rule.require_context && !rule.context.is_empty() {
                    let ca = floor_boundary(text, a.saturating_sub(rule.context_window));
                    let cb = ceil_boundary(text, b + rule.context_window);
                    if !any_word(&text[ca..cb], &rule.context) {
                        continue;
                    }
                }
                self.run_rule(ri, text, a, b, &mut candidates);
            }
        }
        self.resolve(text, candidates)
    }

    fn run_rule(&self, ri: usize, text: &str, a: usize, b: usize, out: &mut Vec<Candidate>) {
        let rule = &self.rules[ri];
        let bytes = text.as_bytes();
        let hay = &bytes[a..b];
        for first in rule.regex.captures_iter(hay) {
            let Some(w0) = first.get(0) else { continue };
            // A match running into the window's end may continue past it (a long token on
            // one long line): match again from its start over a longer haystack.
            let extended = if w0.end() == hay.len() && b < bytes.len() {
                let nb = ceil_boundary(text, (b + MAX_MATCH_EXTEND).min(bytes.len()));
                rule.regex.captures_at(&bytes[a..nb], w0.start())
            } else {
                None
            };
            let caps = extended.as_ref().unwrap_or(&first);
            let Some(whole) = caps.get(0) else { continue };
            let secret = match rule.secret_group {
                Some(g) => caps.get(g),
                None => (1..caps.len()).find_map(|g| caps.get(g)).or(Some(whole)),
            };
            let Some(secret) = secret else { continue };
            if rule.distinct_groups.len() > 1 {
                let texts: Vec<&[u8]> = rule
                    .distinct_groups
                    .iter()
                    .filter_map(|&g| caps.get(g))
                    .map(|m| m.as_bytes())
                    .collect();
                if texts.windows(2).all(|w| w[0] == w[1])
                    && texts.len() == rule.distinct_groups.len()
                {
                    continue;
                }
            }
            let (ms, me) = (a + whole.start(), a + whole.end());
            let (ss, se) = (a + secret.start(), a + secret.end());
            if se <= ss {
                continue;
            }
            if let Some(set) = &rule.not_followed_by
                && bytes.get(me).is_some_and(|&c| set.contains(c))
            {
                continue;
            }
            if let Some(set) = &rule.not_preceded_by
                && ms > 0
                && set.contains(bytes[ms - 1])
            {
                continue;
            }
            let (ss, se) = (floor_boundary(text, ss), ceil_boundary(text, se));
            let secret_text = &text[ss..se];
            if let Some(score) = self.judge(rule, text, secret_text, (ms, me), (ss, se)) {
                out.push(Candidate {
                    start: ss,
                    end: se,
                    score,
                    rule: ri,
                });
            } else if rule.shrink {
                let cuts = secret_text
                    .char_indices()
                    .filter(|(_, c)| *c == ' ' || *c == '-')
                    .map(|(i, _)| i);
                let mut cuts: Vec<usize> = cuts.collect();
                cuts.reverse();
                for cut in cuts {
                    let short = &secret_text[..cut];
                    if let Some(score) =
                        self.judge(rule, text, short, (ms, ss + cut), (ss, ss + cut))
                    {
                        out.push(Candidate {
                            start: ss,
                            end: ss + cut,
                            score,
                            rule: ri,
                        });
                        break;
                    }
                }
            }
        }
    }

    /// Filters and scoring for one regex match; `None` drops it.
    fn judge(
        &self,
        rule: &Rule,
        text: &str,
        secret: &str,
        m: (usize, usize),
        s: (usize, usize),
    ) -> Option<f32> {
        let len = secret.len();
        if len < rule.min_len || len > rule.max_len {
            return None;
        }
        if rule.require_digit && !secret.bytes().any(|b| b.is_ascii_digit()) {
            return None;
        }
        if let Some(min) = rule.entropy
            && checks::shannon_entropy(secret) <= min
        {
            return None;
        }
        let lower = secret.to_ascii_lowercase();
        if rule.stopwords.iter().any(|w| lower.contains(w.as_str())) {
            return None;
        }
        let bytes = text.as_bytes();
        let line = || {
            let (a, b) = extend_to_lines(bytes, m.0, m.1);
            &bytes[a..b]
        };
        let target = |al: &Allowlist| -> &[u8] {
            match al.target {
                AllowTarget::Secret => secret.as_bytes(),
                AllowTarget::Match => &bytes[m.0..m.1],
                AllowTarget::Line => line(),
            }
        };
        if rule
            .allowlists
            .iter()
            .any(|al| al.allows(target(al), &lower))
        {
            return None;
        }
        let mut score = rule.score;
        if let Some(v) = rule.validator {
            match v.check(secret) {
                Verdict::Reject => return None,
                Verdict::Accept(delta) => score += delta,
            }
        }
        if !rule.context.is_empty() || !rule.negative_context.is_empty() {
            let a = floor_boundary(text, s.0.saturating_sub(rule.context_window));
            let b = ceil_boundary(text, s.1 + rule.context_window);
            let around = text[a..b].to_ascii_lowercase();
            let has_context = rule.context.iter().any(|w| around.contains(w.as_str()));
            if has_context {
                score += rule.context_boost;
            } else if rule.require_context {
                return None;
            }
            if rule
                .negative_context
                .iter()
                .any(|w| around.contains(w.as_str()))
            {
                score -= rule.negative_penalty;
            }
        }
        let score = score.clamp(0.0, 1.0);
        (score >= rule.min_score).then_some(score)
    }

    /// Keep the best non-overlapping candidates (score, then length), sorted by start.
    fn resolve(&self, _text: &str, mut c: Vec<Candidate>) -> Vec<Finding> {
        c.sort_by(|x, y| {
            y.score
                .total_cmp(&x.score)
                .then((y.end - y.start).cmp(&(x.end - x.start)))
                .then(x.start.cmp(&y.start))
        });
        let mut taken: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
        let mut out = Vec::new();
        for cand in c {
            let overlaps_prev = taken
                .range(..cand.end)
                .next_back()
                .is_some_and(|(_, &e)| e > cand.start);
            if overlaps_prev {
                continue;
            }
            taken.insert(cand.start, cand.end);
            let rule = &self.rules[cand.rule];
            out.push(Finding {
                kind: rule.kind.clone(),
                category: rule.category,
                start: cand.start,
                end: cand.end,
                score: cand.score,
                rule: rule.id.clone(),
            });
        }
        out.sort_by_key(|f| (f.start, f.end));
        out
    }
}

/// Text with entities replaced by placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    /// The redacted text (valid UTF-8).
    pub text: String,
    /// How many spans were replaced.
    pub replaced: usize,
}

/// Replace each finding's span with `<TYPE_n>` (e.g. `<EMAIL_1>`). `n` counts per type within
/// this call, and the same value always gets the same placeholder. Overlapping or unsorted
/// findings are merged; spans are widened to char boundaries so no byte of an entity
/// survives; everything outside the spans is copied unchanged.
pub fn redact(text: &str, findings: &[Finding]) -> Redacted {
    let mut spans: Vec<(usize, usize, &str)> = findings
        .iter()
        .map(|f| {
            (
                floor_boundary(text, f.start),
                ceil_boundary(text, f.end),
                f.placeholder_type(),
            )
        })
        .filter(|(a, b, _)| a < b)
        .collect();
    spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let mut merged: Vec<(usize, usize, &str)> = Vec::with_capacity(spans.len());
    for s in spans {
        match merged.last_mut() {
            Some(last) if s.0 < last.1 => last.1 = last.1.max(s.1),
            _ => merged.push(s),
        }
    }
    let mut numbers: HashMap<(&str, &str), usize> = HashMap::new();
    let mut per_type: HashMap<&str, usize> = HashMap::new();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for &(a, b, ty) in &merged {
        out.push_str(&text[pos..a]);
        let value = &text[a..b];
        let n = *numbers.entry((ty, value)).or_insert_with(|| {
            let c = per_type.entry(ty).or_insert(0);
            *c += 1;
            *c
        });
        out.push('<');
        out.push_str(ty);
        out.push('_');
        out.push_str(&n.to_string());
        out.push('>');
        pos = b;
    }
    out.push_str(&text[pos..]);
    Redacted {
        text: out,
        replaced: merged.len(),
    }
}

/// A short preview safe to print: the first few characters then the length, e.g.
/// `"AKIA…(20 chars)"`. Never shows more than [`PREVIEW_CHARS`] characters of the value.
pub fn masked_preview(value: &str) -> String {
    let n = value.chars().count();
    let shown = if n <= 8 { 0 } else { PREVIEW_CHARS };
    let head: String = value.chars().take(shown).collect();
    format!("{head}…({n} chars)")
}

/// Characters of a value [`masked_preview`] shows.
pub const PREVIEW_CHARS: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_runs_count_digits_and_colons() {
        let mut runs = Vec::new();
        numeric_runs(b"call 4111 1111 1111 1111 or ::1 now", |r| {
            runs.push((r.start, r.end, r.digits, r.colons))
        });
        assert!(runs.iter().any(|r| r.2 == 16), "{runs:?}");
        assert!(runs.iter().any(|r| r.3 == 2), "{runs:?}");
    }

    #[test]
    fn redact_keeps_surroundings_and_numbers_per_value() {
        let text = "a x@y.de b x@y.de c z@y.de";
        let f = |s: usize, e: usize| Finding {
            kind: "email".into(),
            category: Category::Pii,
            start: s,
            end: e,
            score: 1.0,
            rule: "email".into(),
        };
        let r = redact(text, &[f(2, 8), f(11, 17), f(20, 26)]);
        assert_eq!(r.text, "a <EMAIL_1> b <EMAIL_1> c <EMAIL_2>");
        assert_eq!(r.replaced, 3);
    }

    #[test]
    fn preview_never_shows_short_values() {
        assert_eq!(masked_preview("hunter2"), "…(7 chars)");
        assert_eq!(masked_preview("AKIAIOSFODNN7EXAMPLE"), "AKIA…(20 chars)");
    }
}
