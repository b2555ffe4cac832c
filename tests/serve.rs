//! `serve` with the real `openai` Python client against a server on a free loopback port.
//! Needs the model (scripts/fetch-model.sh) and a Python with `openai` (scripts/test.sh
//! makes one in target/pyenv; or set GEMMTUNE_TEST_PYTHON).

mod common;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

struct Server(std::process::Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The model and a Python with `openai`, as scripts/test.sh prepares them.
fn setup() -> (std::path::PathBuf, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(model.exists(), "run scripts/fetch-model.sh first (scripts/test.sh does)");
    let python = std::env::var("GEMMTUNE_TEST_PYTHON")
        .unwrap_or_else(|_| root.join("target/pyenv/bin/python").to_string_lossy().into_owned());
    let ok = Command::new(&python).args(["-c", "import openai"]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "{python} cannot import openai: run scripts/test.sh (it installs it) or set GEMMTUNE_TEST_PYTHON");
    (model, python)
}

/// `serve` on a free loopback port with `args`; returns it and its address.
fn start(model: &Path, args: &[&str]) -> (Server, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = common::bin()
        .args(["serve", "--model"])
        .arg(model)
        .arg("--table")
        .arg(root.join("tables/cpu-smollm2-135m.csv"))
        .args(["--port", "0"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("server exited before listening").unwrap();
        if let Some(rest) = line.split("on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Drained to the end: a closed pipe would kill the server at its next line (SIGPIPE).
    std::thread::spawn(move || lines.for_each(drop));
    (server, addr)
}

#[test]
fn openai_client_completions_chat_streaming_errors_and_concurrency() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (model, python) = setup();
    let (server, addr) = start(&model, &["--max-batch", "16"]);
    assert!(addr.starts_with("127.0.0.1:"), "binds loopback by default: {addr}");
    let out = Command::new(&python)
        .arg(root.join("tests/py/openai_client.py"))
        .arg(format!("http://{addr}/v1"))
        .arg("SmolLM2-135M-Instruct")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("all checks passed"), "{text}");

    // The server survived all of it and counted the errors.
    let metrics = Command::new(&python)
        .args(["-c", &format!("import urllib.request;print(urllib.request.urlopen('http://{addr}/metrics').read().decode())")])
        .output()
        .unwrap();
    let m = String::from_utf8_lossy(&metrics.stdout);
    assert!(m.contains("status=\"404\"} 1") && m.contains("gemmtune_gemm_calls_total{source=\"exact\"}"), "{m}");
    assert!(m.contains("gemmtune_requests_total{endpoint=\"other\",status=\"404\"} 1"), "the unknown path is counted: {m}");
    drop(server);
}

#[test]
fn a_request_joins_a_running_batch_the_one_past_it_gets_429_and_chunked_prefill_matches() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (model, python) = setup();
    let (server, addr) = start(&model, &["--max-batch", "2", "--queue", "0"]);
    let (host, port) = addr.split_once(':').unwrap();
    let out = Command::new(&python).arg(root.join("tests/py/admission.py")).args([host, port, "SmolLM2-135M-Instruct"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("all checks passed"), "{text}");
    drop(server);
}

/// `serve --record` keeps the session's GEMM calls when stopped by SIGTERM (as a service
/// manager stops it): exit 0 and the decode shapes of the request served are in the file.
#[test]
fn sigterm_keeps_the_record() {
    use std::io::{Read, Write};
    let (model, _) = setup();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.csv");
    let (mut server, addr) = start(&model, &["--record", rec.to_str().unwrap()]);
    let body = r#"{"model":"SmolLM2-135M-Instruct","prompt":"The capital of France is","max_tokens":4,"temperature":0}"#;
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(s, "POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) };
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let f = gemmtune::shapes::ShapeFile::load(&rec).unwrap();
    let decode = f.entries.iter().filter(|e| e.phase == gemmtune::problem::Phase::Decode).count();
    assert!(decode > 0, "{:?}", f.entries);
}
