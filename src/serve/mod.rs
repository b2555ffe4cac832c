//! `serve`: an OpenAI-compatible HTTP API over the runtime (axum). Routes:
//! `POST /v1/completions`, `POST /v1/chat/completions` (both with `stream: true` as
//! server-sent events), `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus).
//! Requests go to the batching engine, which takes `max_batch` decoding plus `queue`
//! waiting; past that the answer is 429 (with `Retry-After`), when the engine is gone 503.
//! Bad input, unknown paths and methods, oversized bodies and parameters this server does
//! not implement (`n` > 1, `logprobs`, `echo`, penalties, tools ...) get a 4xx with an
//! OpenAI-style error body rather than being ignored, and the server keeps serving.

// Request parsing fails with the HTTP response itself (axum's `Response`: large, but built
// once per rejected request), in `parse` and the closures that feed it.
#![allow(clippy::result_large_err)]

pub mod engine;
pub mod metrics;
pub mod stop;

use crate::model::runtime::{DispatchStats, Runtime};
use crate::model::tokenizer::Tokenizer;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::{Engine, Event, Job, Submit};
use metrics::Metrics;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio_stream::wrappers::UnboundedReceiverStream;
use futures_util::StreamExt;

/// Largest request body accepted (413 above).
pub const MAX_BODY: usize = 1 << 20;

pub struct AppState {
    pub model_name: String,
    pub tok: Arc<Tokenizer>,
    pub context: usize,
    pub engine: Engine,
    pub metrics: Metrics,
    pub dispatcher: Arc<dyn DispatchStats>,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .fallback(unknown_path)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// How much the engine takes on (`serve --max-batch`, `--queue`, `--prefill-chunk`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_batch: usize,
    pub queue: usize,
    pub prefill_chunk: usize,
}

/// Starts the engine on `rt` and serves until the process is stopped; `d` gives the
/// dispatch coverage for /metrics.
pub async fn serve<R: Runtime + 'static>(
    rt: R,
    tok: Tokenizer,
    d: Arc<dyn DispatchStats>,
    name: String,
    listener: tokio::net::TcpListener,
    limits: Limits,
) -> std::io::Result<()> {
    let context = rt.config().context;
    let tok = Arc::new(tok);
    let engine = Engine::start(rt, tok.clone(), limits);
    let state = Arc::new(AppState { model_name: name, tok, context, engine, metrics: Metrics::default(), dispatcher: d });
    axum::serve(listener, router(state)).await
}

/// An OpenAI-style error response.
pub fn error(status: StatusCode, kind: &str, message: impl Into<String>, param: Option<&str>) -> Response {
    let body = json!({"error": {"message": message.into(), "type": kind, "param": param, "code": kind}});
    (status, Json(body)).into_response()
}

async fn unknown_path(State(st): State<Arc<AppState>>, uri: axum::http::Uri) -> Response {
    st.metrics.request("other", 404, std::time::Duration::ZERO);
    error(StatusCode::NOT_FOUND, "invalid_request_error", format!("no route for {}", uri.path()), None)
}

async fn wrong_method(State(st): State<Arc<AppState>>, method: axum::http::Method, uri: axum::http::Uri) -> Response {
    st.metrics.request("other", 405, std::time::Duration::ZERO);
    error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", format!("{} is not allowed on {}", method, uri.path()), None)
}

struct Request {
    prompt: Vec<u32>,
    max_tokens: usize,
    temperature: f32,
    top_p: f32,
    seed: u64,
    stop: Vec<String>,
    stream: bool,
    /// `stream_options.include_usage`: a last chunk with the usage and no choices.
    include_usage: bool,
}

/// Parameters of the OpenAI API this server does not implement, with the test of the
/// values that ask for nothing (what clients send by default). Anything else is refused
/// with 400 naming the parameter, so a client never gets silently less than it asked for.
/// Whether a parameter's value asks for nothing beyond what this server does.
type Neutral = fn(&Value) -> bool;

const NOT_IMPLEMENTED: &[(&str, Neutral, &str)] = &[
    ("n", |v| v.as_u64() == Some(1), "only n = 1 is supported"),
    ("best_of", |v| v.as_u64() == Some(1), "only best_of = 1 is supported"),
    ("logprobs", |v| v == &Value::Bool(false), "logprobs are not supported"),
    ("top_logprobs", |v| v.as_u64() == Some(0), "logprobs are not supported"),
    ("echo", |v| v == &Value::Bool(false), "echo is not supported"),
    ("suffix", |v| v.as_str() == Some(""), "suffix is not supported"),
    ("presence_penalty", |v| v.as_f64() == Some(0.0), "presence_penalty is not supported (only 0)"),
    ("frequency_penalty", |v| v.as_f64() == Some(0.0), "frequency_penalty is not supported (only 0)"),
    ("logit_bias", |v| v.as_object().is_some_and(|o| o.is_empty()), "logit_bias is not supported"),
    ("response_format", |v| v.get("type").and_then(Value::as_str) == Some("text"), "only the text response_format is supported"),
    ("tools", |v| v.as_array().is_some_and(|a| a.is_empty()), "tools are not supported"),
    ("functions", |v| v.as_array().is_some_and(|a| a.is_empty()), "functions are not supported"),
    ("tool_choice", |v| v.as_str() == Some("none"), "tools are not supported"),
    ("function_call", |v| v.as_str() == Some("none"), "functions are not supported"),
];

/// Most stop sequences a request may give (as the OpenAI API).
const MAX_STOPS: usize = 4;

/// Parses and checks the fields common to both endpoints; `prompt_of` turns the body into
/// prompt tokens (a completion's `prompt`, or the rendered chat messages).
fn parse(
    st: &AppState,
    body: &Bytes,
    prompt_of: impl FnOnce(&Value) -> Result<Vec<u32>, Response>,
) -> Result<Request, Response> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_request_error", format!("malformed JSON: {e}"), None))?;
    if !v.is_object() {
        return Err(error(StatusCode::BAD_REQUEST, "invalid_request_error", "the body must be a JSON object", None));
    }
    match v.get("model").and_then(Value::as_str) {
        None => return Err(error(StatusCode::BAD_REQUEST, "invalid_request_error", "'model' is required", Some("model"))),
        Some(m) if m != st.model_name => {
            return Err(error(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("the model '{m}' does not exist; this server serves '{}'", st.model_name),
                Some("model"),
            ))
        }
        _ => {}
    }
    let prompt = prompt_of(&v)?;
    if prompt.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "invalid_request_error", "the prompt is empty", Some("prompt")));
    }
    let room = st.context.saturating_sub(prompt.len());
    if room == 0 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "context_length_exceeded",
            format!("the prompt has {} tokens; the context holds {}", prompt.len(), st.context),
            Some("prompt"),
        ));
    }
    let bad = |key: &str, m: String| error(StatusCode::BAD_REQUEST, "invalid_request_error", m, Some(key));
    for (key, neutral, why) in NOT_IMPLEMENTED {
        match v.get(*key) {
            None | Some(Value::Null) => {}
            Some(x) if neutral(x) => {}
            Some(_) => return Err(bad(key, format!("'{key}': {why} by this server"))),
        }
    }
    // An explicit null counts as absent (some clients send every field).
    let field = |key: &str| v.get(key).filter(|x| !x.is_null());
    let max_tokens = match field("max_tokens").or_else(|| field("max_completion_tokens")) {
        None => room.min(256),
        Some(x) => match x.as_u64() {
            Some(n) if n >= 1 && n as usize <= room => n as usize,
            _ => {
                return Err(bad(
                    "max_tokens",
                    format!("'max_tokens' must be an integer from 1 to {room} (context {} minus the prompt)", st.context),
                ))
            }
        },
    };
    let num = |key: &str, default: f64, lo: f64, hi: f64| -> Result<f64, Response> {
        match field(key) {
            None => Ok(default),
            Some(x) => x.as_f64().filter(|f| (lo..=hi).contains(f)).ok_or_else(|| bad(key, format!("'{key}' must be a number from {lo} to {hi}"))),
        }
    };
    // No seed: a fresh one, so two identical sampled requests do not get the same text.
    let seed = match field("seed") {
        None => rand::random::<u64>(),
        Some(x) => x.as_u64().or_else(|| x.as_i64().map(|i| i as u64)).ok_or_else(|| bad("seed", "'seed' must be an integer".into()))?,
    };
    let stop: Vec<String> = match field("stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<_>>().unwrap_or_else(|| vec![String::new()]),
        Some(_) => vec![String::new()],
    };
    if stop.len() > MAX_STOPS || stop.iter().any(String::is_empty) {
        return Err(bad("stop", format!("'stop' must be a non-empty string or an array of at most {MAX_STOPS} of them")));
    }
    let flag = |key: &str| -> Result<bool, Response> {
        match field(key) {
            None => Ok(false),
            Some(x) => x.as_bool().ok_or_else(|| bad(key, format!("'{key}' must be true or false"))),
        }
    };
    let stream = flag("stream")?;
    let include_usage = match field("stream_options") {
        None => false,
        Some(o) if o.is_object() => match o.get("include_usage").filter(|x| !x.is_null()) {
            None => false,
            Some(x) => x.as_bool().ok_or_else(|| bad("stream_options", "'stream_options.include_usage' must be true or false".into()))?,
        },
        Some(_) => return Err(bad("stream_options", "'stream_options' must be an object".into())),
    };
    Ok(Request {
        prompt,
        max_tokens,
        temperature: num("temperature", 1.0, 0.0, 2.0)? as f32,
        top_p: num("top_p", 1.0, 0.0, 1.0)? as f32,
        seed,
        stop,
        stream,
        include_usage,
    })
}

/// The request body, or the OpenAI-style answer to why it could not be read (too large:
/// 413, as axum's body limit says).
fn body_of(st: &AppState, endpoint: &str, body: Result<Bytes, BytesRejection>) -> Result<Bytes, Response> {
    body.map_err(|e| {
        st.metrics.request(endpoint, e.status().as_u16(), std::time::Duration::ZERO);
        error(e.status(), "invalid_request_error", e.body_text(), None)
    })
}

async fn completions(State(st): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    let body = match body_of(&st, "completions", body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let tok = st.tok.clone();
    // A raw prompt is the caller's own formatting: control-token text in it is read as
    // control tokens (a client writing its own chat format), as vLLM and llama.cpp do.
    let r = parse(&st, &body, |v| {
        let bad = |m: String| error(StatusCode::BAD_REQUEST, "invalid_request_error", m, Some("prompt"));
        let text = match v.get("prompt") {
            Some(Value::String(s)) => s.as_str(),
            Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or(""),
            _ => return Err(bad("'prompt' must be a string".into())),
        };
        tok.encode(text).map_err(|e| bad(e.to_string()))
    });
    respond(st, r, false, started).await
}

async fn chat(State(st): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let started = Instant::now();
    let body = match body_of(&st, "chat", body) {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let tok = st.tok.clone();
    let r = parse(&st, &body, |v| {
        let bad = |m: &str| error(StatusCode::BAD_REQUEST, "invalid_request_error", m, Some("messages"));
        let msgs = v.get("messages").and_then(Value::as_array).ok_or_else(|| bad("'messages' must be an array"))?;
        if msgs.is_empty() {
            return Err(bad("'messages' is empty"));
        }
        let mut out = Vec::new();
        for m in msgs {
            let role = m.get("role").and_then(Value::as_str).ok_or_else(|| bad("every message needs a 'role'"))?;
            // The template writes the role as it is: an unknown one could carry any text.
            if !ROLES.contains(&role) {
                return Err(bad(&format!("'{role}' is not a role (one of {})", ROLES.join(", "))));
            }
            out.push((role.to_string(), message_text(role, m.get("content")).map_err(|e| bad(&e))?));
        }
        tok.chat_ids(&out).map_err(|e| bad(&e.to_string()))
    });
    respond(st, r, true, started).await
}

/// The message roles of the OpenAI chat API.
const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// A chat message's text: a string, or an array of text parts (joined by newlines, as
/// vLLM does); an assistant turn may have no content (one that called tools).
fn message_text(role: &str, content: Option<&Value>) -> Result<String, String> {
    match content {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for p in parts {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => texts.push(t),
                    (Some(kind), _) if kind != "text" => return Err(format!("content parts of type '{kind}' are not supported (text only)")),
                    _ => return Err("every content part needs a 'type' and, for text, a string 'text'".into()),
                }
            }
            Ok(texts.join("\n"))
        }
        None | Some(Value::Null) if role == "assistant" => Ok(String::new()),
        _ => Err("every message needs a 'content' string or array of text parts".into()),
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Records a request in the metrics once: with the status sent, or as 499 (client closed
/// the connection) when the response is dropped before it finished.
struct Outcome {
    st: Arc<AppState>,
    endpoint: &'static str,
    started: Instant,
    recorded: bool,
}

impl Outcome {
    fn record(&mut self, status: u16) {
        if !self.recorded {
            self.recorded = true;
            self.st.metrics.request(self.endpoint, status, self.started.elapsed());
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.record(499);
    }
}

async fn respond(st: Arc<AppState>, r: Result<Request, Response>, chat: bool, started: Instant) -> Response {
    let endpoint = if chat { "chat" } else { "completions" };
    let mut outcome = Outcome { st: st.clone(), endpoint, started, recorded: false };
    let r = match r {
        Ok(r) => r,
        Err(resp) => {
            outcome.record(resp.status().as_u16());
            return resp;
        }
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (stream, include_usage) = (r.stream, r.include_usage);
    let job =
        Job { prompt: r.prompt, max_tokens: r.max_tokens, temperature: r.temperature, top_p: r.top_p, seed: r.seed, stop: r.stop, events: tx };
    match st.engine.submit(job) {
        Submit::Ok => {}
        Submit::Busy => {
            outcome.record(429);
            let mut resp = error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", "the server is at its batch and queue limit; retry later", None);
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return resp;
        }
        Submit::Down => {
            outcome.record(503);
            return error(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "the engine is not running", None);
        }
    }
    let id = format!("{}-{:x}", if chat { "chatcmpl" } else { "cmpl" }, rand::random::<u64>());
    let (model, created) = (st.model_name.clone(), now());
    let object = if chat { "chat.completion" } else { "text_completion" };
    let usage = |p: usize, c: usize| json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
    if stream {
        let chunk_object = if chat { "chat.completion.chunk" } else { "text_completion" };
        let mut first = true;
        let st2 = st.clone();
        let events = UnboundedReceiverStream::new(rx).flat_map(move |ev| {
            let choice = |text: Option<String>, finish: Option<&str>, first: bool| {
                if chat {
                    let mut delta = serde_json::Map::new();
                    if first {
                        delta.insert("role".into(), json!("assistant"));
                    }
                    if let Some(t) = text {
                        delta.insert("content".into(), json!(t));
                    }
                    json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
                } else {
                    json!({"index": 0, "text": text.unwrap_or_default(), "logprobs": null, "finish_reason": finish})
                }
            };
            let chunk = |choices: Value| json!({"id": id, "object": chunk_object, "created": created, "model": model, "choices": choices});
            let data = match ev {
                Event::Text(t) => {
                    let c = choice(Some(t), None, first);
                    first = false;
                    vec![chunk(json!([c]))]
                }
                Event::Done { reason, prompt_tokens, completion_tokens } => {
                    st2.metrics.tokens(prompt_tokens, completion_tokens);
                    outcome.record(200);
                    let mut out = vec![chunk(json!([choice(None, Some(reason.as_str()), first)]))];
                    if include_usage {
                        let mut last = chunk(json!([]));
                        last["usage"] = usage(prompt_tokens, completion_tokens);
                        out.push(last);
                    }
                    out
                }
                Event::Error(e) => {
                    // The status line (200) is sent already: the error is the last event.
                    st2.metrics.engine_error();
                    outcome.record(200);
                    vec![json!({"error": {"message": e, "type": "server_error"}})]
                }
            };
            futures_util::stream::iter(data.into_iter().map(|d| Ok::<_, Infallible>(SseEvent::default().data(d.to_string()))))
        });
        let done = futures_util::stream::iter([Ok::<_, Infallible>(SseEvent::default().data("[DONE]"))]);
        return Sse::new(events.chain(done)).keep_alive(KeepAlive::default()).into_response();
    }
    let mut rx = rx;
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text(t) => text.push_str(&t),
            Event::Done { reason, prompt_tokens, completion_tokens } => {
                st.metrics.tokens(prompt_tokens, completion_tokens);
                outcome.record(200);
                let choice = if chat {
                    json!({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": reason.as_str()})
                } else {
                    json!({"index": 0, "text": text, "finish_reason": reason.as_str(), "logprobs": null})
                };
                let body = json!({"id": id, "object": object, "created": created, "model": model, "choices": [choice],
                    "usage": usage(prompt_tokens, completion_tokens)});
                return Json(body).into_response();
            }
            Event::Error(e) => {
                st.metrics.engine_error();
                outcome.record(500);
                return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e, None);
            }
        }
    }
    outcome.record(503);
    error(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "the engine stopped", None)
}

async fn models(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": st.model_name, "object": "model", "created": 0, "owned_by": "gemmtune"}]}))
}

async fn health(State(st): State<Arc<AppState>>) -> Response {
    let alive = st.engine.is_alive();
    let body = json!({"status": if alive { "ok" } else { "engine stopped" },
                      "active_sequences": st.engine.active.load(std::sync::atomic::Ordering::Relaxed),
                      "max_batch": st.engine.max_batch});
    let status = if alive { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn metrics_text(State(st): State<Arc<AppState>>) -> Response {
    let cov = st.dispatcher.coverage();
    let body = st.metrics.render(&cov, st.engine.active.load(std::sync::atomic::Ordering::Relaxed));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
