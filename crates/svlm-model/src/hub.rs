//! Where model weights come from: a local HF folder, a `.gguf` file (converted once into a cache
//! folder), or a Hugging Face Hub repo id (downloaded with `hf-hub` into the standard HF cache from
//! `HF_ENDPOINT`, or read from the cache alone when `HF_HUB_OFFLINE` is set). Every source ends as an HF folder, so the
//! model loader has one load path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use crate::gguf;

/// Files fetched from a hub repo besides the weights; each is optional (a repo without a chat
/// template or processor is fine).
const OPTIONAL_REPO_FILES: &[&str] = &[
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "processor_config.json",
];

const SAFETENSORS_FILE: &str = "model.safetensors";
const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";

/// Bumped when the GGUF conversion's output changes, so stale cache folders are not reused.
const GGUF_CONVERSION_VERSION: u32 = 1;

/// Where and how [`resolve_model_with`] looks things up. [`HubOptions::from_env`] reads the
/// standard variables; tests build it by hand so they never touch the environment or network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// The HF hub cache (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub hf_cache: PathBuf,
    /// The hub to download from (`HF_ENDPOINT`, else `https://huggingface.co`); a mirror serves the same paths.
    pub endpoint: String,
    /// Access token for gated and private repos (`HF_TOKEN`, else the `token` file beside the cache that
    /// `huggingface-cli login` writes).
    pub token: Option<String>,
    /// Only local files: `HF_HUB_OFFLINE` set to 1/true/yes/on (hf-hub itself ignores it).
    pub offline: bool,
    /// Root of svlm's own cache (`SVLM_CACHE`, else `~/.cache/svlm`); GGUF conversions go to
    /// `<root>/gguf/<key>`.
    pub svlm_cache: PathBuf,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

fn home_cache() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg);
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache"),
        None => PathBuf::from(".cache"),
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The HF hub cache as huggingface_hub finds it.
fn hf_hub_cache() -> PathBuf {
    env_path("HF_HUB_CACHE")
        .or_else(|| env_path("HF_HOME").map(|home| home.join("hub")))
        .unwrap_or_else(|| home_cache().join("huggingface").join("hub"))
}

impl HubOptions {
    pub fn from_env() -> Self {
        let svlm_cache = env_path("SVLM_CACHE").unwrap_or_else(|| home_cache().join("svlm"));
        let hf_cache = hf_hub_cache();
        let token = std::env::var("HF_TOKEN")
            .ok()
            .or_else(|| hf_hub::Cache::new(hf_cache.clone()).token())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Self {
            hf_cache,
            endpoint: std::env::var("HF_ENDPOINT")
                .ok()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "https://huggingface.co".to_string()),
            token,
            offline: env_flag("HF_HUB_OFFLINE"),
            svlm_cache,
        }
    }
}

/// Resolves a model spec to a local HF folder: an existing directory is returned as is; a `.gguf`
/// file is converted (once) into the svlm cache; anything else is an HF repo id (`org/name`),
/// downloaded into the HF cache (`revision` defaults to `main`). Options come from the
/// environment, see [`HubOptions::from_env`].
pub fn resolve_model(spec: &str, revision: Option<&str>) -> Result<PathBuf> {
    resolve_model_with(spec, revision, &HubOptions::from_env())
}

/// [`resolve_model`] with explicit options.
pub fn resolve_model_with(
    spec: &str,
    revision: Option<&str>,
    options: &HubOptions,
) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        if !path.is_file() {
            bail!("GGUF file {} does not exist", path.display());
        }
        return convert_gguf_cached(path, &options.svlm_cache.join("gguf"));
    }
    if path.exists() {
        bail!("{spec} is a file, but neither a model folder nor a .gguf file");
    }
    let (owner, name) = parse_repo_id(spec)?;
    if options.offline {
        resolve_offline(owner, name, revision, &options.hf_cache)
    } else {
        download_repo(owner, name, revision, options)
    }
}

fn parse_repo_id(spec: &str) -> Result<(&str, &str)> {
    let valid = |part: &str| {
        !part.is_empty()
            && !part.starts_with(['.', '-'])
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match spec.split_once('/') {
        Some((owner, name)) if valid(owner) && valid(name) => Ok((owner, name)),
        _ => bail!(
            "'{spec}' is not a local folder, a .gguf file, or a hub repo id of the form org/name"
        ),
    }
}

/// The HF cache folder of a model repo: `models--org--name`.
pub fn repo_cache_folder(hf_cache: &Path, repo_id: &str) -> PathBuf {
    hf_cache.join(format!("models--{}", repo_id.replace('/', "--")))
}

fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

/// Offline resolution: `refs/<revision>` -> commit -> `snapshots/<commit>/`, which must hold a
/// `config.json` and complete weights. Done by hand (not via hf-hub) so the error can say exactly
/// which file of which repo is missing from which cache folder.
fn resolve_offline(
    owner: &str,
    name: &str,
    revision: Option<&str>,
    hf_cache: &Path,
) -> Result<PathBuf> {
    let repo_id = format!("{owner}/{name}");
    let revision = revision.unwrap_or("main");
    let repo_dir = repo_cache_folder(hf_cache, &repo_id);
    let hint =
        "(HF_HUB_OFFLINE is set, so nothing is downloaded; unset it or download the model first)";
    let commit = if is_commit_hash(revision) {
        revision.to_string()
    } else {
        let ref_path = repo_dir.join("refs").join(revision);
        let text = std::fs::read_to_string(&ref_path).map_err(|_| {
            anyhow!(
                "model {repo_id} (revision {revision}) is not in the local HF cache: {} is missing {hint}",
                ref_path.display()
            )
        })?;
        text.trim().to_string()
    };
    let snapshot = repo_dir.join("snapshots").join(&commit);
    let config = snapshot.join("config.json");
    if !config.is_file() {
        bail!(
            "model {repo_id} (revision {revision}) is incomplete in the local HF cache: {} is missing {hint}",
            config.display()
        );
    }
    safetensors_files(&snapshot).with_context(|| {
        format!(
            "model {repo_id} (revision {revision}) in the local HF cache at {} {hint}",
            snapshot.display()
        )
    })?;
    Ok(snapshot)
}

/// Downloads a repo's config, weights (one file or an index and its shards) and whichever tokenizer, chat
/// template and processor files it has, into the HF cache; returns the snapshot folder. The repo's file list
/// (`/api/models/<id>/revision/<revision>`) says which files exist, so a missing optional file costs no request.
fn download_repo(
    owner: &str,
    name: &str,
    revision: Option<&str>,
    options: &HubOptions,
) -> Result<PathBuf> {
    let repo_id = format!("{owner}/{name}");
    let revision = revision.unwrap_or("main");
    let hf_cache = &options.hf_cache;
    let api = hf_hub::api::sync::ApiBuilder::from_cache(hf_hub::Cache::new(hf_cache.clone()))
        .with_endpoint(options.endpoint.clone())
        .with_token(options.token.clone())
        .with_progress(true)
        .build()
        .with_context(|| {
            format!(
                "creating the Hugging Face Hub client (cache {})",
                hf_cache.display()
            )
        })?;
    let repo = api.repo(hf_hub::Repo::with_revision(
        repo_id.clone(),
        hf_hub::RepoType::Model,
        revision.to_string(),
    ));
    let listing = repo.info().with_context(|| {
        format!(
            "listing the files of {repo_id} (revision {revision}) on {}",
            options.endpoint
        )
    })?;
    let present: BTreeSet<&str> = listing
        .siblings
        .iter()
        .map(|s| s.rfilename.as_str())
        .collect();
    let fetch = |filename: &str| {
        repo.get(filename)
            .with_context(|| format!("downloading {filename} of {repo_id} (revision {revision})"))
    };
    if !present.contains("config.json") {
        bail!("{repo_id} (revision {revision}) has no config.json: not a transformers model repo");
    }
    let config = fetch("config.json")?;
    let snapshot = config
        .parent()
        .ok_or_else(|| {
            anyhow!(
                "hf-hub returned {} without a parent folder",
                config.display()
            )
        })?
        .to_path_buf();
    if present.contains(SAFETENSORS_INDEX) {
        let index_path = fetch(SAFETENSORS_INDEX)?;
        for shard in index_shards(&index_path)? {
            fetch(&shard)?;
        }
    } else if present.contains(SAFETENSORS_FILE) {
        fetch(SAFETENSORS_FILE)?;
    } else {
        bail!(
            "{repo_id} (revision {revision}) has neither {SAFETENSORS_FILE} nor {SAFETENSORS_INDEX} (svlm reads \
             safetensors weights)"
        );
    }
    for filename in OPTIONAL_REPO_FILES.iter().filter(|f| present.contains(*f)) {
        fetch(filename)?;
    }
    Ok(snapshot)
}

/// The shard file names of a `model.safetensors.index.json` (unique, sorted); a name that is not a plain file beside
/// the index is an error naming the index.
pub(crate) fn index_shards(index_path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index_path)
        .with_context(|| format!("reading {}", index_path.display()))?;
    let index: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", index_path.display()))?;
    let weight_map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| anyhow!("{} has no \"weight_map\" object", index_path.display()))?;
    let mut shards = BTreeSet::new();
    for (tensor, shard) in weight_map {
        let shard = shard.as_str().ok_or_else(|| {
            anyhow!(
                "{}: weight_map entry '{tensor}' is not a file name",
                index_path.display()
            )
        })?;
        // A shard must be a plain file beside the index, never a path out of the folder.
        if shard.is_empty() || shard.contains(['/', '\\']) || shard == ".." {
            bail!(
                "{}: weight_map entry '{tensor}' names '{shard}', not a file beside the index",
                index_path.display()
            );
        }
        shards.insert(shard.to_string());
    }
    if shards.is_empty() {
        bail!("{}: weight_map is empty", index_path.display());
    }
    Ok(shards.into_iter().collect())
}

/// The safetensors files of an HF folder: `model.safetensors.index.json`'s shards (unique, in
/// name order; every one must exist) or else `model.safetensors`.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index_path = dir.join(SAFETENSORS_INDEX);
    if index_path.is_file() {
        let shards = index_shards(&index_path)?;
        let missing: Vec<&str> = shards
            .iter()
            .filter(|s| !dir.join(s).is_file())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            bail!(
                "{} lists shard(s) missing from {}: {}",
                index_path.display(),
                dir.display(),
                missing.join(", ")
            );
        }
        return Ok(shards.into_iter().map(|s| dir.join(s)).collect());
    }
    let single = dir.join(SAFETENSORS_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    bail!(
        "{} has neither {SAFETENSORS_FILE} nor {SAFETENSORS_INDEX}",
        dir.display()
    )
}

/// FNV-1a, 64 bit: a stable (across Rust versions and runs) hash for cache keys.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The cache key of a GGUF file: its absolute path, size and modification time (hashing the
/// content would read gigabytes for every lookup), plus the conversion version.
fn gguf_cache_key(gguf: &Path) -> Result<String> {
    let absolute =
        std::fs::canonicalize(gguf).with_context(|| format!("resolving {}", gguf.display()))?;
    let meta = std::fs::metadata(&absolute)
        .with_context(|| format!("reading metadata of {}", absolute.display()))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    hash = fnv1a(absolute.as_os_str().as_encoded_bytes(), hash);
    hash = fnv1a(&meta.len().to_le_bytes(), hash);
    hash = fnv1a(&modified.to_le_bytes(), hash);
    hash = fnv1a(&GGUF_CONVERSION_VERSION.to_le_bytes(), hash);
    let stem = absolute
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect::<String>()
        })
        .unwrap_or_default();
    Ok(format!("{stem}-{hash:016x}"))
}

/// Converts `gguf` into `<gguf_cache>/<key>` unless that folder already exists (the conversion
/// renames a complete folder into place, so an existing one is complete).
pub fn convert_gguf_cached(gguf: &Path, gguf_cache: &Path) -> Result<PathBuf> {
    let target = gguf_cache.join(gguf_cache_key(gguf)?);
    if target.join("config.json").is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(gguf_cache)
        .with_context(|| format!("creating {}", gguf_cache.display()))?;
    let started = std::time::Instant::now();
    match gguf::gguf_to_hf_folder(gguf, &target) {
        Ok(()) => {
            tracing::info!(
                "converted {} into {} in {:.1} s",
                gguf.display(),
                target.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(target)
        }
        // Another process may have finished the same conversion first.
        Err(_) if target.join("config.json").is_file() => Ok(target),
        Err(e) => Err(e)
            .with_context(|| format!("converting {} into {}", gguf.display(), target.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    fn options(root: &Path, offline: bool) -> HubOptions {
        HubOptions {
            hf_cache: root.join("hub"),
            endpoint: "http://127.0.0.1:9".to_string(),
            token: None,
            offline,
            svlm_cache: root.join("svlm"),
        }
    }

    /// Lays out `models--org--name` the way huggingface_hub does: blobs, a snapshot of symlinks
    /// (plain files here; symlinks resolve the same), refs/main.
    fn fake_repo(hf_cache: &Path, repo_id: &str, files: &[(&str, &str)]) -> PathBuf {
        let repo = repo_cache_folder(hf_cache, repo_id);
        let snapshot = repo.join("snapshots").join(COMMIT);
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), COMMIT).unwrap();
        for (name, text) in files {
            std::fs::write(snapshot.join(name), text).unwrap();
        }
        snapshot
    }

    #[test]
    fn offline_resolves_a_cached_repo_by_ref_and_by_commit() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), true);
        let snapshot = fake_repo(
            &opts.hf_cache,
            "org/tiny",
            &[("config.json", "{}"), ("model.safetensors", "x")],
        );
        assert_eq!(
            resolve_model_with("org/tiny", None, &opts).unwrap(),
            snapshot
        );
        assert_eq!(
            resolve_model_with("org/tiny", Some(COMMIT), &opts).unwrap(),
            snapshot
        );
    }

    #[test]
    fn offline_missing_repo_names_repo_and_cache_path() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), true);
        let err = format!(
            "{:#}",
            resolve_model_with("org/absent", None, &opts).unwrap_err()
        );
        assert!(err.contains("org/absent"), "{err}");
        assert!(err.contains("models--org--absent"), "{err}");
        assert!(err.contains(&opts.hf_cache.display().to_string()), "{err}");
        assert!(err.contains("HF_HUB_OFFLINE"), "{err}");

        let err = format!(
            "{:#}",
            resolve_model_with("org/absent", Some("v2"), &opts).unwrap_err()
        );
        assert!(err.contains("refs/v2") || err.contains("refs\\v2"), "{err}");
    }

    #[test]
    fn offline_snapshot_without_weights_or_with_missing_shard_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), true);
        fake_repo(&opts.hf_cache, "org/noweights", &[("config.json", "{}")]);
        let err = format!(
            "{:#}",
            resolve_model_with("org/noweights", None, &opts).unwrap_err()
        );
        assert!(
            err.contains("org/noweights") && err.contains("model.safetensors"),
            "{err}"
        );

        let index = r#"{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#;
        fake_repo(
            &opts.hf_cache,
            "org/sharded",
            &[
                ("config.json", "{}"),
                (SAFETENSORS_INDEX, index),
                ("model-00001-of-00002.safetensors", "x"),
            ],
        );
        let err = format!(
            "{:#}",
            resolve_model_with("org/sharded", None, &opts).unwrap_err()
        );
        assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
        assert!(
            !err.contains("model-00001-of-00002.safetensors,"),
            "only the missing shard is named: {err}"
        );
    }

    #[test]
    fn local_folder_is_itself_and_bad_specs_fail() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = options(tmp.path(), true);
        assert_eq!(
            resolve_model_with(tmp.path().to_str().unwrap(), None, &opts).unwrap(),
            tmp.path()
        );
        for bad in ["not a repo", "a/b/c", "/does/not/exist.gguf"] {
            assert!(resolve_model_with(bad, None, &opts).is_err(), "{bad}");
        }
        let file = tmp.path().join("weights.bin");
        std::fs::write(&file, "x").unwrap();
        assert!(resolve_model_with(file.to_str().unwrap(), None, &opts).is_err());
    }

    #[test]
    fn sharded_index_gives_unique_sorted_shards() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let index = r#"{"weight_map":{"z":"model-00002-of-00002.safetensors","a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors"}}"#;
        std::fs::write(dir.join(SAFETENSORS_INDEX), index).unwrap();
        std::fs::write(dir.join("model-00001-of-00002.safetensors"), "x").unwrap();
        let err = format!("{:#}", safetensors_files(dir).unwrap_err());
        assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
        std::fs::write(dir.join("model-00002-of-00002.safetensors"), "x").unwrap();
        assert_eq!(
            safetensors_files(dir).unwrap(),
            vec![
                dir.join("model-00001-of-00002.safetensors"),
                dir.join("model-00002-of-00002.safetensors")
            ]
        );

        std::fs::write(
            dir.join(SAFETENSORS_INDEX),
            r#"{"weight_map":{"a":"../escape.safetensors"}}"#,
        )
        .unwrap();
        assert!(safetensors_files(dir).is_err());
        std::fs::write(dir.join(SAFETENSORS_INDEX), r#"{"metadata":{}}"#).unwrap();
        assert!(format!("{:#}", safetensors_files(dir).unwrap_err()).contains("weight_map"));
    }

    #[test]
    fn single_file_and_empty_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let err = format!("{:#}", safetensors_files(tmp.path()).unwrap_err());
        assert!(err.contains("model.safetensors"), "{err}");
        std::fs::write(tmp.path().join(SAFETENSORS_FILE), "x").unwrap();
        assert_eq!(
            safetensors_files(tmp.path()).unwrap(),
            vec![tmp.path().join(SAFETENSORS_FILE)]
        );
    }

    #[test]
    fn cache_key_changes_with_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("m.gguf");
        std::fs::write(&file, "abc").unwrap();
        let first = gguf_cache_key(&file).unwrap();
        assert_eq!(first, gguf_cache_key(&file).unwrap());
        assert!(first.starts_with("m-"), "{first}");
        std::fs::write(&file, "abcd").unwrap();
        assert_ne!(first, gguf_cache_key(&file).unwrap());
    }
}
