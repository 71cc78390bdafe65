//! The Hugging Face source: offline by default (a repo missing from the cache is named at
//! once, no connection), and a download only when the caller allows it, here from a hub
//! stand-in on loopback that speaks the resolve/Range protocol hf-hub uses.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use workbench::model::source::{ResolveOptions, resolve_with};

use crate::common::fixtures;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

struct Hub {
    files: HashMap<String, Vec<u8>>,
    requests: AtomicUsize,
}

async fn resolve_file(
    State(hub): State<Arc<Hub>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    hub.requests.fetch_add(1, Ordering::SeqCst);
    // /{org}/{name}/resolve/{revision}/{file}
    let parts: Vec<&str> = path.splitn(5, '/').collect();
    if parts.len() != 5 || parts[2] != "resolve" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(body) = hub.files.get(parts[4]) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let len = body.len();
    let (start, end) = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .map(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, ""));
            let a: usize = a.parse().unwrap_or(0);
            let b: usize = b
                .parse()
                .map(|b: usize| b.min(len.saturating_sub(1)))
                .unwrap_or(len.saturating_sub(1));
            (a, b)
        })
        .unwrap_or((0, len.saturating_sub(1)));
    let slice = body.get(start..=end).unwrap_or(&[]).to_vec();
    let etag = format!("\"{}\"", workbench::audit::sha256_hex(body));
    (
        StatusCode::PARTIAL_CONTENT,
        [
            ("x-repo-commit", COMMIT.to_string()),
            ("etag", etag),
            ("content-range", format!("bytes {start}-{end}/{len}")),
        ],
        slice,
    )
        .into_response()
}

#[test]
fn hub_repo_is_offline_by_default_and_downloads_only_when_allowed() {
    let tiny = fixtures().join("logits/tiny_llama_tied");
    let mut files = HashMap::new();
    for f in ["config.json", "model.safetensors", "generation_config.json"] {
        files.insert(f.to_string(), std::fs::read(tiny.join(f)).unwrap());
    }
    files.insert(
        "tokenizer.json".into(),
        br#"{"version":"1.0","model":{"type":"WordLevel","vocab":{"a":0},"unk_token":"a"}}"#
            .to_vec(),
    );
    let hub = Arc::new(Hub {
        files,
        requests: AtomicUsize::new(0),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::get(resolve_file))
        .with_state(hub.clone());
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let cache = tempfile::tempdir().unwrap();
    let opts = ResolveOptions {
        allow_download: false,
        hub_endpoint: Some(format!("http://{addr}")),
        hf_cache: Some(cache.path().to_path_buf()),
    };
    let e = resolve_with("acme/tiny-llama", &opts, &mut ())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("acme/tiny-llama") && e.contains("not in the local Hugging Face cache"),
        "{e}"
    );
    assert_eq!(
        hub.requests.load(Ordering::SeqCst),
        0,
        "offline resolve must not connect"
    );

    let allowed = ResolveOptions {
        allow_download: true,
        ..opts.clone()
    };
    let dir = resolve_with("acme/tiny-llama", &allowed, &mut ()).expect("download");
    assert!(hub.requests.load(Ordering::SeqCst) > 0);
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "generation_config.json",
    ] {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            hub.files[f],
            "{f} differs after download"
        );
    }
    let cfg = workbench::model::LlamaConfig::from_hf_file(&dir.join("config.json")).unwrap();
    let src = workbench::model::SafetensorsSource::open_dir(&dir).unwrap();
    workbench::model::load_llama(&cfg, &src, &workbench::backend::inference_device())
        .expect("downloaded model loads");

    // Cached now: resolving again, even with downloads allowed, makes no request.
    let before = hub.requests.load(Ordering::SeqCst);
    let again = resolve_with("acme/tiny-llama", &allowed, &mut ()).unwrap();
    assert_eq!(again, dir);
    assert_eq!(hub.requests.load(Ordering::SeqCst), before);
    rt.shutdown_background();
}
