//! (temporary stub; the real audit log lands from branch dlp)
pub fn now_rfc3339() -> String { time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default() }
pub fn sha256_hex(b: &[u8]) -> String { use sha2::Digest; hex::encode(sha2::Sha256::digest(b)) }
use std::path::Path;
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry { pub time: String, pub actor: String, pub action: String, pub content_sha256: String, pub level: Option<crate::data::classify::Level>, pub score: Option<f32>, pub decision: String, pub model: Option<String>, pub extra: serde_json::Map<String, serde_json::Value> }
#[derive(Debug, thiserror::Error)] #[error("audit: {0}")] pub struct AuditError(pub String);
pub struct AuditLog;
impl AuditLog { pub fn open(_p: &Path) -> Result<AuditLog, AuditError> { Ok(AuditLog) } pub fn append(&mut self, _e: AuditEntry) -> Result<(), AuditError> { Ok(()) } }
