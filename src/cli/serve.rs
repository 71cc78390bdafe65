//! `workbench serve`: loads an artifact and serves it on localhost.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::audit::AuditLog;
use crate::data::classify::Level;
use crate::data::dlp::Scanner;
use crate::serve::{self, Engine};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The artifact folder (or any model source).
    pub model: String,
    /// Allow downloading a Hugging Face repo missing from the local cache (off by default).
    #[arg(long)]
    pub allow_download: bool,
    /// Key file: `ID SECRET [CLEARANCE]` per line (clearance defaults to INTERNAL; a caller needs
    /// at least the highest data level the artifact was trained on).
    #[arg(long)]
    pub api_keys: Option<PathBuf>,
    /// Serve without authentication (for a local try-out only).
    #[arg(long)]
    pub insecure_no_auth: bool,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Audit log (hash-chained JSON lines).
    #[arg(long, default_value = "serve-audit.jsonl")]
    pub audit_log: PathBuf,
    /// Require at least this clearance from callers, above what the artifact records.
    #[arg(long)]
    pub min_clearance: Option<Level>,
    /// Model id reported by /v1/models (default: the artifact's).
    #[arg(long)]
    pub model_id: Option<String>,
}

pub fn run(a: &ServeArgs) -> anyhow::Result<i32> {
    let keys = match (&a.api_keys, a.insecure_no_auth) {
        (Some(p), false) => Some(serve::read_keys(p)?),
        (None, true) => None,
        (Some(_), true) => anyhow::bail!("--api-keys and --insecure-no-auth exclude each other"),
        (None, false) => anyhow::bail!(
            "an API key file is required (--api-keys FILE); use --insecure-no-auth only for a local try-out"
        ),
    };
    let loaded = super::open_model(&a.model, a.allow_download)?;
    let model_id = a
        .model_id
        .clone()
        .or_else(|| loaded.manifest.as_ref().map(|m| m.lineage.model_id.clone()))
        .unwrap_or_else(|| a.model.clone());
    let required = loaded
        .manifest
        .as_ref()
        .map_or(Level::Public, |m| {
            crate::export::required_clearance(m, &loaded.bundle.path)
        })
        .max(a.min_clearance.unwrap_or(Level::Public));
    if keys.is_none() && required > Level::Public {
        eprintln!(
            "warning: --insecure-no-auth serves a model trained on {required} data to anyone who can reach {}:{}",
            a.host, a.port
        );
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let engine = Arc::new(Engine {
        loaded,
        model_id: model_id.clone(),
        required_clearance: required,
        keys,
        scanner: Scanner::builtin(),
        audit: Mutex::new(AuditLog::open(&a.audit_log)?),
        busy: Mutex::new(()),
        created,
    });
    let addr: SocketAddr = format!("{}:{}", a.host, a.port)
        .parse()
        .map_err(|e| anyhow::anyhow!("--host/--port: {e}"))?;
    if !addr.ip().is_loopback() {
        eprintln!("warning: listening on {addr}, which is reachable from other machines");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("bind {addr}: {e}"))?;
        eprintln!(
            "serving {model_id} on http://{} (requires clearance {required})",
            listener.local_addr()?
        );
        axum::serve(listener, serve::router(engine))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    })?;
    Ok(0)
}
