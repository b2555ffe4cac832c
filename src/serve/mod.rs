//! `serve`: an OpenAI-compatible HTTP API over the runtime (axum). Routes:
//! `POST /v1/completions`, `POST /v1/chat/completions` (both with `stream: true` as
//! server-sent events), `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus).
//! Requests go to the batching engine through a bounded queue; when it is full the
//! answer is 429, when the engine is gone 503. Bad input gets a 4xx with an OpenAI-style
//! error body and the server keeps serving.

// Request parsing fails with the HTTP response itself (axum's `Response`: large, but built
// once per rejected request), in `parse` and the closures that feed it.
#![allow(clippy::result_large_err)]

pub mod engine;
pub mod metrics;

use crate::model::runtime::{DispatchStats, Runtime};
use crate::model::tokenizer::Tokenizer;
use axum::body::Bytes;
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
use tokio_stream::StreamExt;

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
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Starts the engine on `rt` and serves until the process is stopped; `d` gives the
/// dispatch coverage for /metrics.
pub async fn serve<R: Runtime + 'static>(
    rt: R,
    tok: Tokenizer,
    d: Arc<dyn DispatchStats>,
    name: String,
    listener: tokio::net::TcpListener,
    max_batch: usize,
    queue: usize,
) -> std::io::Result<()> {
    let context = rt.config().context;
    let tok = Arc::new(tok);
    let engine = Engine::start(rt, tok.clone(), max_batch, queue);
    let state = Arc::new(AppState { model_name: name, tok, context, engine, metrics: Metrics::default(), dispatcher: d });
    axum::serve(listener, router(state)).await
}

/// An OpenAI-style error response.
pub fn error(status: StatusCode, kind: &str, message: impl Into<String>, param: Option<&str>) -> Response {
    let body = json!({"error": {"message": message.into(), "type": kind, "param": param, "code": kind}});
    (status, Json(body)).into_response()
}

struct Request {
    prompt: Vec<u32>,
    max_tokens: usize,
    temperature: f32,
    top_p: f32,
    seed: u64,
    stream: bool,
}

/// Parses and checks the fields common to both endpoints; `prompt_of` turns the body into
/// prompt text (a completion's `prompt`, or the rendered chat messages).
fn parse(
    st: &AppState,
    body: &Bytes,
    prompt_of: impl FnOnce(&Value) -> Result<String, Response>,
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
    let text = prompt_of(&v)?;
    let prompt = st
        .tok
        .encode(&text)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_request_error", e.to_string(), Some("prompt")))?;
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
    let max_tokens = match v.get("max_tokens").or_else(|| v.get("max_completion_tokens")) {
        None | Some(Value::Null) => room.min(256),
        Some(x) => match x.as_u64() {
            Some(n) if n >= 1 && n as usize <= room => n as usize,
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    format!("'max_tokens' must be an integer from 1 to {room} (context {} minus the prompt)", st.context),
                    Some("max_tokens"),
                ))
            }
        },
    };
    let num = |key: &str, default: f64, lo: f64, hi: f64| -> Result<f64, Response> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => x.as_f64().filter(|f| (lo..=hi).contains(f)).ok_or_else(|| {
                error(StatusCode::BAD_REQUEST, "invalid_request_error", format!("'{key}' must be a number from {lo} to {hi}"), Some(key))
            }),
        }
    };
    Ok(Request {
        prompt,
        max_tokens,
        temperature: num("temperature", 1.0, 0.0, 2.0)? as f32,
        top_p: num("top_p", 1.0, 0.0, 1.0)? as f32,
        seed: v.get("seed").and_then(Value::as_u64).unwrap_or(0),
        stream: v.get("stream").and_then(Value::as_bool).unwrap_or(false),
    })
}

async fn completions(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let started = Instant::now();
    let r = parse(&st, &body, |v| match v.get("prompt") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => Ok(a[0].as_str().unwrap_or("").to_string()),
        _ => Err(error(StatusCode::BAD_REQUEST, "invalid_request_error", "'prompt' must be a string", Some("prompt"))),
    });
    respond(st, r, false, started).await
}

async fn chat(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let started = Instant::now();
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
            let content = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
                _ => return Err(bad("every message needs a string 'content'")),
            };
            out.push((role.to_string(), content));
        }
        tok.chat_prompt(&out).map_err(|e| bad(&e.to_string()))
    });
    respond(st, r, true, started).await
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn respond(st: Arc<AppState>, r: Result<Request, Response>, chat: bool, started: Instant) -> Response {
    let endpoint = if chat { "chat" } else { "completions" };
    let r = match r {
        Ok(r) => r,
        Err(resp) => {
            st.metrics.request(endpoint, resp.status().as_u16(), started.elapsed());
            return resp;
        }
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = r.stream;
    let job = Job { prompt: r.prompt, max_tokens: r.max_tokens, temperature: r.temperature, top_p: r.top_p, seed: r.seed, events: tx };
    match st.engine.submit(job) {
        Submit::Ok => {}
        Submit::Busy => {
            st.metrics.request(endpoint, 429, started.elapsed());
            return error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", "the request queue is full; retry later", None);
        }
        Submit::Down => {
            st.metrics.request(endpoint, 503, started.elapsed());
            return error(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "the engine is not running", None);
        }
    }
    let id = format!("{}-{:x}", if chat { "chatcmpl" } else { "cmpl" }, rand::random::<u64>());
    let (model, created) = (st.model_name.clone(), now());
    let object = if chat { "chat.completion" } else { "text_completion" };
    if stream {
        let chunk_object = if chat { "chat.completion.chunk" } else { "text_completion" };
        let mut first = true;
        let st2 = st.clone();
        let events = UnboundedReceiverStream::new(rx).map(move |ev| {
            let choice = |text: Option<String>, finish: Option<&str>, first: bool| {
                if chat {
                    let mut delta = serde_json::Map::new();
                    if first {
                        delta.insert("role".into(), json!("assistant"));
                    }
                    if let Some(t) = text {
                        delta.insert("content".into(), json!(t));
                    }
                    json!({"index": 0, "delta": delta, "finish_reason": finish})
                } else {
                    json!({"index": 0, "text": text.unwrap_or_default(), "finish_reason": finish})
                }
            };
            let data = match ev {
                Event::Text(t) => {
                    let c = choice(Some(t), None, first);
                    first = false;
                    json!({"id": id, "object": chunk_object, "created": created, "model": model, "choices": [c]})
                }
                Event::Done { reason, prompt_tokens, completion_tokens } => {
                    st2.metrics.tokens(prompt_tokens, completion_tokens);
                    st2.metrics.request(endpoint, 200, started.elapsed());
                    json!({"id": id, "object": chunk_object, "created": created, "model": model,
                           "choices": [choice(None, Some(reason.as_str()), first)],
                           "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                     "total_tokens": prompt_tokens + completion_tokens}})
                }
                Event::Error(e) => {
                    st2.metrics.request(endpoint, 500, started.elapsed());
                    json!({"error": {"message": e, "type": "server_error"}})
                }
            };
            Ok::<_, Infallible>(SseEvent::default().data(data.to_string()))
        });
        let done = tokio_stream::once(Ok::<_, Infallible>(SseEvent::default().data("[DONE]")));
        return Sse::new(events.chain(done)).keep_alive(KeepAlive::default()).into_response();
    }
    let mut rx = rx;
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text(t) => text.push_str(&t),
            Event::Done { reason, prompt_tokens, completion_tokens } => {
                st.metrics.tokens(prompt_tokens, completion_tokens);
                st.metrics.request(endpoint, 200, started.elapsed());
                let choice = if chat {
                    json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason.as_str()})
                } else {
                    json!({"index": 0, "text": text, "finish_reason": reason.as_str(), "logprobs": null})
                };
                let body = json!({"id": id, "object": object, "created": created, "model": model, "choices": [choice],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens}});
                return Json(body).into_response();
            }
            Event::Error(e) => {
                st.metrics.request(endpoint, 500, started.elapsed());
                return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e, None);
            }
        }
    }
    st.metrics.request(endpoint, 503, started.elapsed());
    error(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "the engine stopped", None)
}

async fn models(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": st.model_name, "object": "model", "created": 0, "owned_by": "gemmtune"}]}))
}

async fn health(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"status": "ok", "active_sequences": st.engine.active.load(std::sync::atomic::Ordering::Relaxed),
                "max_batch": st.engine.max_batch}))
}

async fn metrics_text(State(st): State<Arc<AppState>>) -> Response {
    let cov = st.dispatcher.coverage();
    let body = st.metrics.render(&cov, st.engine.active.load(std::sync::atomic::Ordering::Relaxed));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
