//! Downloading a model repo from a hub: a local server that answers like huggingface.co (the repo's file list at
//! `/api/models/<id>/revision/<rev>`, files at `/<id>/resolve/<rev>/<file>` with the commit and ETag headers and
//! byte ranges) stands in for the network, through `HF_ENDPOINT`'s option.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use svlm_model::hub::{HubOptions, resolve_model_with};

const COMMIT: &str = "4b1d7a3c9e2f60518d7c6b5a4f3e2d1c0b9a8f7e";
const REPO: &str = "svlm-test/tiny-idefics3";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
}

struct MockHub {
    endpoint: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Serves `files` as the repo `REPO` at revision `main` (commit `COMMIT`) until the test process ends.
fn serve(files: BTreeMap<String, Vec<u8>>) -> MockHub {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let files = Arc::new(files);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (files, log) = (files.clone(), log.clone());
            std::thread::spawn(move || answer(stream, &files, &log));
        }
    });
    MockHub { endpoint, seen }
}

fn answer(mut stream: TcpStream, files: &BTreeMap<String, Vec<u8>>, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    log.lock().expect("log").push(Seen {
        path: path.clone(),
        authorization: headers.get("authorization").cloned(),
    });
    let listing = format!("/api/models/{REPO}/revision/main");
    let resolve = format!("/{REPO}/resolve/main/");
    let (status, extra, body): (&str, Vec<String>, Vec<u8>) = if path == listing {
        let siblings: Vec<_> = files
            .keys()
            .map(|name| serde_json::json!({ "rfilename": name }))
            .collect();
        let json = serde_json::json!({ "sha": COMMIT, "siblings": siblings });
        ("200 OK", vec![], json.to_string().into_bytes())
    } else if let Some(bytes) = path.strip_prefix(&resolve).and_then(|name| files.get(name)) {
        let start: usize = headers
            .get("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split('-').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let end = match headers.get("range").map(String::as_str) {
            Some("bytes=0-0") => 1.min(bytes.len()),
            _ => bytes.len(),
        };
        let etag = format!("{:016x}{:08x}", fnv(bytes), bytes.len());
        (
            "206 Partial Content",
            vec![
                format!("x-repo-commit: {COMMIT}"),
                format!("etag: \"{etag}\""),
                format!(
                    "content-range: bytes {start}-{}/{}",
                    end.max(1) - 1,
                    bytes.len()
                ),
            ],
            bytes[start.min(end)..end].to_vec(),
        )
    } else {
        ("404 Not Found", vec![], b"Entry not found".to_vec())
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in extra {
        response.push_str(&h);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.write_all(&body);
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

fn fixture_files() -> BTreeMap<String, Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/idefics3");
    [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "processor_config.json",
        "generation_config.json",
    ]
    .iter()
    .map(|name| {
        let bytes = std::fs::read(dir.join(name)).expect("fixture");
        (name.to_string(), bytes)
    })
    .collect()
}

fn options(root: &Path, endpoint: &str, token: Option<&str>, offline: bool) -> HubOptions {
    HubOptions {
        hf_cache: root.join("hub"),
        endpoint: endpoint.to_string(),
        token: token.map(str::to_string),
        offline,
        svlm_cache: root.join("svlm"),
    }
}

fn read_all(path: &PathBuf) -> Vec<u8> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
}

#[test]
fn a_repo_downloads_into_the_hf_cache_and_then_resolves_offline() {
    let files = fixture_files();
    let hub = serve(files.clone());
    let tmp = tempfile::tempdir().expect("tempdir");

    let snapshot = resolve_model_with(
        REPO,
        None,
        &options(tmp.path(), &hub.endpoint, Some("hf_test"), false),
    )
    .expect("download");
    let repo_dir = tmp.path().join("hub/models--svlm-test--tiny-idefics3");
    assert_eq!(snapshot, repo_dir.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).expect("ref"),
        COMMIT
    );
    for (name, bytes) in &files {
        assert!(
            read_all(&snapshot.join(name)) == *bytes,
            "{name} differs from what the hub served"
        );
    }
    let seen = hub.seen.lock().expect("log").clone();
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer hf_test")),
        "every request carries the token: {seen:?}"
    );
    // Only files the listing names are asked for: no request for an absent tokenizer.model or index.
    assert!(
        seen.iter().all(|s| !s.path.ends_with("tokenizer.model")
            && !s.path.ends_with("model.safetensors.index.json")),
        "{seen:?}"
    );

    // Offline, the same spec is the cached snapshot; the model in it loads.
    let offline = resolve_model_with(
        REPO,
        None,
        &options(tmp.path(), "http://127.0.0.1:9", None, true),
    )
    .expect("offline");
    assert_eq!(offline, snapshot);
    svlm_model::load_pretrained(&offline, &Default::default()).expect("the downloaded model loads");
}

#[test]
fn a_repo_without_weights_or_a_missing_repo_is_an_error_naming_it() {
    let mut files = fixture_files();
    files.remove("model.safetensors");
    let hub = serve(files);
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = resolve_model_with(REPO, None, &options(tmp.path(), &hub.endpoint, None, false))
        .expect_err("no weights");
    let text = format!("{err:#}");
    assert!(
        text.contains(REPO) && text.contains("model.safetensors"),
        "{text}"
    );

    let err = resolve_model_with(
        "svlm-test/absent",
        None,
        &options(tmp.path(), &hub.endpoint, None, false),
    )
    .expect_err("absent");
    let text = format!("{err:#}");
    assert!(
        text.contains("svlm-test/absent") && text.contains(&hub.endpoint),
        "{text}"
    );
}
