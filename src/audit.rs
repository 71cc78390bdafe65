//! (temporary stub; the real audit log lands from branch dlp)
pub fn now_rfc3339() -> String { time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default() }
pub fn sha256_hex(b: &[u8]) -> String { use sha2::Digest; hex::encode(sha2::Sha256::digest(b)) }
