//! (temporary stub; the real classifier lands from branch dlp)
use serde::{Deserialize, Serialize};
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level { Public, Internal, Confidential, Secret }
impl std::fmt::Display for Level { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{:?}", self) } }
impl std::str::FromStr for Level { type Err = String; fn from_str(s: &str) -> Result<Self, String> { match s.to_uppercase().as_str() { "PUBLIC" => Ok(Level::Public), "INTERNAL" => Ok(Level::Internal), "CONFIDENTIAL" => Ok(Level::Confidential), "SECRET" => Ok(Level::Secret), _ => Err(s.into()) } } }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action { Allow, Redact, Drop, Fail }
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Policy { pub public: Action, pub internal: Action, pub confidential: Action, pub secret: Action }
impl Default for Policy { fn default() -> Self { Policy { public: Action::Allow, internal: Action::Allow, confidential: Action::Redact, secret: Action::Drop } } }
impl Policy { pub fn action_for(&self, l: Level) -> Action { match l { Level::Public => self.public, Level::Internal => self.internal, Level::Confidential => self.confidential, Level::Secret => if self.secret == Action::Fail { Action::Fail } else { Action::Drop } } } }
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceRule { pub glob: String, pub level: Level }
pub struct Classification { pub level: Level, pub reasons: Vec<String> }
pub fn classify(label: Option<Level>, _text: &str, _source: &str, _rules: &[SourceRule], _findings: &[super::dlp::Finding]) -> Classification { Classification { level: label.unwrap_or(Level::Internal), reasons: vec![] } }
