//! The OpenAI-compatible HTTP server for pilots: `POST /v1/chat/completions`,
//! `GET /v1/models`, `GET /health`. API keys (with a clearance level each), DLP on prompts
//! (secrets are refused, personal data redacted before the model sees it) and responses
//! (redacted), and a hash-chained audit line per request that never holds the raw prompt.
//! Wire types live in [`wire`]; handlers are thin and call [`Engine`].

pub mod wire;

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};

use crate::audit::{AuditEntry, AuditLog};
use crate::data::classify::Level;
use crate::data::dlp::{self, Category, Scanner};
use crate::data::template::Message;
use crate::generate::{self, FinishReason, SamplingParams};
use crate::pipeline::LoadedModel;
use wire::{
    ApiError, ChatRequest, ChatResponse, Choice, ChoiceMessage, ModelCard, ModelList, Usage,
};

/// Makes response ids unique within a process.
static REQUEST_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Default and largest number of tokens one request may generate.
pub const DEFAULT_MAX_TOKENS: usize = 256;
pub const MAX_TOKENS_LIMIT: usize = 2048;

/// One API key: an id for the audit log, the sha256 of the secret, and its clearance.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    pub secret_sha256: [u8; 32],
    pub clearance: Level,
}

/// Key-file problems, naming the file and line.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {}{why}", if *line > 0 { format!("line {line}: ") } else { String::new() })]
pub struct KeyFileError {
    pub path: String,
    pub line: usize,
    pub why: String,
}

/// Reads a key file: one key per line, `ID SECRET [CLEARANCE]` (clearance defaults to
/// INTERNAL); `#` starts a comment. Ids and secrets must be unique.
pub fn read_keys(path: &Path) -> Result<Vec<ApiKey>, KeyFileError> {
    let err = |line: usize, why: String| KeyFileError {
        path: path.display().to_string(),
        line,
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(0, e.to_string()))?;
    let mut keys = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(err(i + 1, "expected `ID SECRET [CLEARANCE]`".into()));
        }
        if parts[1].len() < 16 {
            return Err(err(
                i + 1,
                format!("key {:?}: secret must be at least 16 characters", parts[0]),
            ));
        }
        let clearance = match parts.get(2) {
            Some(c) => c
                .parse::<Level>()
                .map_err(|_| err(i + 1, format!("unknown clearance {c:?}")))?,
            None => Level::Internal,
        };
        let secret_sha256: [u8; 32] = Sha256::digest(parts[1].as_bytes()).into();
        if keys.iter().any(|k: &ApiKey| k.id == parts[0]) {
            return Err(err(i + 1, format!("key id {:?} appears twice", parts[0])));
        }
        if keys
            .iter()
            .any(|k: &ApiKey| k.secret_sha256 == secret_sha256)
        {
            return Err(err(
                i + 1,
                format!("key {:?} reuses another key's secret", parts[0]),
            ));
        }
        keys.push(ApiKey {
            id: parts[0].to_string(),
            secret_sha256,
            clearance,
        });
    }
    if keys.is_empty() {
        return Err(err(0, "no keys in file".into()));
    }
    Ok(keys)
}

/// Everything a request handler needs.
pub struct Engine {
    pub loaded: LoadedModel,
    pub model_id: String,
    /// The highest data level in the artifact: callers need at least this clearance.
    pub required_clearance: Level,
    /// `None` = authentication disabled (explicit insecure flag).
    pub keys: Option<Vec<ApiKey>>,
    pub scanner: Scanner,
    pub audit: Mutex<AuditLog>,
    /// One generation at a time: the CPU is the bottleneck.
    pub busy: Mutex<()>,
    pub created: u64,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Engine {
    fn authenticate(&self, headers: &HeaderMap) -> Result<(String, Level), ApiError> {
        let Some(keys) = &self.keys else {
            return Ok(("anonymous".into(), Level::Secret));
        };
        let header = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t)
            .ok_or_else(|| {
                ApiError::unauthorized("missing `Authorization: Bearer <key>` header")
            })?;
        let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let key = keys
            .iter()
            .find(|k| constant_time_eq(&k.secret_sha256, &digest))
            .ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
        Ok((key.id.clone(), key.clearance))
    }

    fn audit(&self, actor: &str, action: &str, content: &str, score: Option<f32>, decision: &str) {
        let entry = AuditEntry {
            time: crate::audit::now_rfc3339(),
            actor: actor.to_string(),
            action: action.to_string(),
            content_sha256: sha256_hex(content),
            level: Some(self.required_clearance),
            score,
            decision: decision.to_string(),
            model: Some(self.model_id.clone()),
            extra: Default::default(),
        };
        if let Ok(mut log) = self.audit.lock() {
            let _ = log.append(entry);
        }
    }

    /// Handles one chat completion (blocking; run off the async runtime).
    pub fn chat(&self, headers: &HeaderMap, req: ChatRequest) -> Result<ChatResponse, ApiError> {
        let (actor, clearance) = match self.authenticate(headers) {
            Ok(v) => v,
            Err(e) => {
                self.audit(
                    "unauthenticated",
                    "serve.chat",
                    "",
                    None,
                    "refused: unauthorized",
                );
                return Err(e);
            }
        };
        let prompt_text: String = req
            .messages
            .iter()
            .map(|m| format!("{}: {}\n", m.role, m.content.as_text()))
            .collect();
        if clearance < self.required_clearance {
            self.audit(
                &actor,
                "serve.chat",
                &prompt_text,
                None,
                "refused: clearance",
            );
            return Err(ApiError::forbidden(&format!(
                "key {actor:?} is cleared for {clearance} but this model was trained on {} data",
                self.required_clearance
            )));
        }
        if let Some(m) = &req.model {
            if m != &self.model_id {
                self.audit(
                    &actor,
                    "serve.chat",
                    &prompt_text,
                    None,
                    "refused: unknown model",
                );
                return Err(ApiError::not_found(&format!(
                    "model {m:?} is not served here (serving {:?})",
                    self.model_id
                )));
            }
        }
        if req.messages.is_empty() {
            return Err(ApiError::bad_request(
                "`messages` must hold at least one message",
                Some("messages"),
            ));
        }
        if let Some(t) = req.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
            return Err(ApiError::bad_request(
                &format!("temperature must be in [0, 2] (got {t})"),
                Some("temperature"),
            ));
        }
        if let Some(p) = req.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Err(ApiError::bad_request(
                &format!("top_p must be in (0, 1] (got {p})"),
                Some("top_p"),
            ));
        }
        if req.n.unwrap_or(1) != 1 {
            return Err(ApiError::bad_request("only n = 1 is supported", Some("n")));
        }
        let max_tokens = req
            .max_completion_tokens
            .or(req.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS);
        if max_tokens == 0 || max_tokens > MAX_TOKENS_LIMIT {
            return Err(ApiError::bad_request(
                &format!("max_tokens must be in 1..={MAX_TOKENS_LIMIT}"),
                Some("max_tokens"),
            ));
        }
        // DLP on the prompt: secrets refuse the request, personal data is redacted.
        let mut messages = Vec::with_capacity(req.messages.len());
        let mut redactions = 0usize;
        let mut top_score: Option<f32> = None;
        for m in &req.messages {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
                return Err(ApiError::bad_request(
                    &format!("unsupported role {:?}", m.role),
                    Some("messages"),
                ));
            }
            let text = m.content.as_text();
            let findings = self.scanner.scan(&text);
            if let Some(f) = findings
                .iter()
                .filter(|f| f.score >= self.scanner.block_threshold())
                .max_by(|a, b| a.score.total_cmp(&b.score))
            {
                top_score = Some(top_score.map_or(f.score, |s: f32| s.max(f.score)));
                if matches!(f.category, Category::Secret) {
                    self.audit(
                        &actor,
                        "serve.chat",
                        &prompt_text,
                        Some(f.score),
                        &format!("refused: prompt contains a secret ({})", f.kind),
                    );
                    return Err(ApiError::bad_request(
                        &format!(
                            "the prompt contains what looks like a secret ({}); remove it and retry",
                            f.kind
                        ),
                        Some("messages"),
                    ));
                }
            }
            let content = if findings.is_empty() {
                text
            } else {
                redactions += findings.len();
                dlp::redact(&text, &findings).text
            };
            messages.push(Message::new(&m.role, &content));
        }
        let fmt = &self.loaded.format;
        let ids = fmt
            .prompt_ids(&messages)
            .map_err(|e| ApiError::bad_request(&e.to_string(), Some("messages")))?;
        let params = SamplingParams {
            temperature: req.temperature.unwrap_or(0.0),
            top_p: req.top_p,
            top_k: None,
            min_p: None,
            repetition_penalty: 1.0,
            seed: req.seed.unwrap_or(0),
            max_tokens,
            stop_tokens: fmt.stop_ids.clone(),
            stop_strings: req.stop.clone().map(|s| s.into_vec()).unwrap_or_default(),
        };
        let g = {
            let _guard = self
                .busy
                .lock()
                .map_err(|_| ApiError::internal("engine lock poisoned"))?;
            generate::generate(
                &self.loaded.model,
                &fmt.tokenizer,
                &ids,
                &params,
                &mut |_| {},
            )
        };
        let out_findings = self.scanner.scan(&g.text);
        let answer = if out_findings.is_empty() {
            g.text.clone()
        } else {
            dlp::redact(&g.text, &out_findings).text
        };
        let decision = format!(
            "answered ({} prompt redactions, {} response redactions, {} tokens)",
            redactions,
            out_findings.len(),
            g.tokens.len()
        );
        self.audit(&actor, "serve.chat", &prompt_text, top_score, &decision);
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(ChatResponse {
            id: format!(
                "chatcmpl-{}",
                &sha256_hex(&format!(
                    "{:?}{}{prompt_text}",
                    std::time::SystemTime::now(),
                    REQUEST_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ))[..24]
            ),
            object: "chat.completion".into(),
            created,
            model: self.model_id.clone(),
            choices: vec![Choice {
                index: 0,
                message: ChoiceMessage {
                    role: "assistant".into(),
                    content: answer,
                },
                finish_reason: match g.finish {
                    FinishReason::Stop => "stop".into(),
                    FinishReason::Length => "length".into(),
                },
            }],
            usage: Usage {
                prompt_tokens: ids.len(),
                completion_tokens: g.tokens.len(),
                total_tokens: ids.len() + g.tokens.len(),
            },
        })
    }
}

async fn health(State(e): State<Arc<Engine>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "model": e.model_id }))
}

async fn models(State(e): State<Arc<Engine>>, headers: HeaderMap) -> Response {
    if let Err(err) = e.authenticate(&headers) {
        return err.into_response();
    }
    Json(ModelList {
        object: "list".into(),
        data: vec![ModelCard {
            id: e.model_id.clone(),
            object: "model".into(),
            created: e.created,
            owned_by: "workbench".into(),
        }],
    })
    .into_response()
}

async fn chat(
    State(e): State<Arc<Engine>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(err) => {
            return ApiError::bad_request(&format!("invalid request body: {err}"), None)
                .into_response();
        }
    };
    let engine = e.clone();
    let stream = req.stream == Some(true);
    match tokio::task::spawn_blocking(move || engine.chat(&headers, req)).await {
        Ok(Ok(resp)) if stream => sse_response(&resp),
        Ok(Ok(resp)) => Json(resp).into_response(),
        Ok(Err(err)) => err.into_response(),
        Err(_) => ApiError::internal("generation task failed").into_response(),
    }
}

async fn method_not_allowed() -> Response {
    ApiError {
        status: 405,
        kind: "invalid_request_error",
        message: "method not allowed on this endpoint".into(),
        param: None,
    }
    .into_response()
}

async fn not_found() -> Response {
    ApiError::not_found("no such endpoint").into_response()
}

/// Characters per streamed content chunk.
const SSE_CHUNK_CHARS: usize = 16;

/// A `stream: true` answer as server-sent events in OpenAI's chunk format. The answer is
/// complete (and has passed response DLP) before the first event is sent, so nothing that
/// DLP would redact can leave the server; clients get the protocol, not earlier tokens.
fn sse_response(resp: &ChatResponse) -> Response {
    let mut body = String::new();
    let mut event = |delta: serde_json::Value, finish: Option<&str>| {
        let chunk = serde_json::json!({
            "id": resp.id,
            "object": "chat.completion.chunk",
            "created": resp.created,
            "model": resp.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        });
        body.push_str("data: ");
        body.push_str(&chunk.to_string());
        body.push_str("\n\n");
    };
    event(
        serde_json::json!({ "role": "assistant", "content": "" }),
        None,
    );
    let content = &resp.choices[0].message.content;
    let chars: Vec<char> = content.chars().collect();
    for piece in chars.chunks(SSE_CHUNK_CHARS) {
        event(
            serde_json::json!({ "content": piece.iter().collect::<String>() }),
            None,
        );
    }
    event(
        serde_json::json!({}),
        Some(resp.choices[0].finish_reason.as_str()),
    );
    body.push_str("data: [DONE]\n\n");
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The HTTP routes over an engine.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(engine)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.body())).into_response()
    }
}
