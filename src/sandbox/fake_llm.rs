//! A fake Anthropic Messages API on 127.0.0.1: replays scripted turns as real SSE
//! (frames split across writes, pings included) or as error responses, and records
//! every request (headers and body) so tests can assert on what the client sent.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One SSE frame to send.
#[derive(Debug, Clone)]
pub struct Frame {
    pub event: String,
    pub data: Value,
}

fn frame(event: &str, data: Value) -> Frame {
    Frame {
        event: event.into(),
        data,
    }
}

/// What the fake answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 `text/event-stream` with these frames.
    Stream(Vec<Frame>),
    /// The same, with a pause before every write (for cancellation tests).
    SlowStream(Vec<Frame>, Duration),
    /// An error response with the API's error body and extra headers.
    Error {
        status: u16,
        error_type: String,
        message: String,
        headers: Vec<(String, String)>,
    },
}

/// Builds one assistant turn's frames.
#[derive(Debug, Clone, Default)]
pub struct TurnBuilder {
    blocks: Vec<Vec<Frame>>,
    stop_reason: Option<String>,
    error_after_start: Option<(String, String)>,
}

impl TurnBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A text block, streamed as one delta per piece.
    pub fn text(mut self, pieces: &[&str]) -> Self {
        let i = self.blocks.len();
        let mut f = vec![frame(
            "content_block_start",
            json!({"type":"content_block_start","index":i,"content_block":{"type":"text","text":""}}),
        )];
        for p in pieces {
            f.push(frame(
                "content_block_delta",
                json!({"type":"content_block_delta","index":i,"delta":{"type":"text_delta","text":p}}),
            ));
        }
        f.push(frame("ping", json!({"type":"ping"})));
        f.push(frame(
            "content_block_stop",
            json!({"type":"content_block_stop","index":i}),
        ));
        self.blocks.push(f);
        self
    }

    /// A tool_use block whose input JSON is cut into three `input_json_delta`s.
    pub fn tool_use(mut self, id: &str, name: &str, input: &Value) -> Self {
        let i = self.blocks.len();
        let s = input.to_string();
        let cut1 = s.len() / 3;
        let cut2 = 2 * s.len() / 3;
        let cut1 = (0..=cut1)
            .rev()
            .find(|c| s.is_char_boundary(*c))
            .unwrap_or(0);
        let cut2 = (0..=cut2)
            .rev()
            .find(|c| s.is_char_boundary(*c))
            .unwrap_or(0);
        let mut f = vec![frame(
            "content_block_start",
            json!({"type":"content_block_start","index":i,"content_block":{"type":"tool_use","id":id,"name":name,"input":{}}}),
        )];
        for part in ["", &s[..cut1], &s[cut1..cut2], &s[cut2..]] {
            f.push(frame(
                "content_block_delta",
                json!({"type":"content_block_delta","index":i,"delta":{"type":"input_json_delta","partial_json":part}}),
            ));
        }
        f.push(frame(
            "content_block_stop",
            json!({"type":"content_block_stop","index":i}),
        ));
        self.blocks.push(f);
        self.stop_reason = Some("tool_use".into());
        self
    }

    /// A block of a type the client does not know (kept, not fatal).
    pub fn unknown_block(mut self, ty: &str) -> Self {
        let i = self.blocks.len();
        self.blocks.push(vec![
            frame(
                "content_block_start",
                json!({"type":"content_block_start","index":i,"content_block":{"type":ty,"data":"opaque"}}),
            ),
            frame(
                "content_block_stop",
                json!({"type":"content_block_stop","index":i}),
            ),
        ]);
        self
    }

    pub fn stop_reason(mut self, r: &str) -> Self {
        self.stop_reason = Some(r.into());
        self
    }

    /// After the blocks, an `error` event instead of message_delta/message_stop.
    pub fn then_error(mut self, error_type: &str, message: &str) -> Self {
        self.error_after_start = Some((error_type.into(), message.into()));
        self
    }

    pub fn build(self) -> Reply {
        let mut f = vec![frame(
            "message_start",
            json!({"type":"message_start","message":{"id":"msg_fake","type":"message","role":"assistant","model":"fake","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}),
        )];
        f.push(frame("ping", json!({"type":"ping"})));
        for b in self.blocks {
            f.extend(b);
        }
        if let Some((t, m)) = self.error_after_start {
            f.push(frame(
                "error",
                json!({"type":"error","error":{"type":t,"message":m}}),
            ));
            return Reply::Stream(f);
        }
        f.push(frame(
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":self.stop_reason.unwrap_or_else(|| "end_turn".into()),"stop_sequence":null},"usage":{"output_tokens":42}}),
        ));
        f.push(frame("message_stop", json!({"type":"message_stop"})));
        Reply::Stream(f)
    }
}

impl Reply {
    /// This stream, with `pause` before every write.
    pub fn slow(self, pause: Duration) -> Reply {
        match self {
            Reply::Stream(f) | Reply::SlowStream(f, _) => Reply::SlowStream(f, pause),
            other => other,
        }
    }

    pub fn text(s: &str) -> Reply {
        TurnBuilder::new().text(&[s]).build()
    }

    pub fn error(status: u16, error_type: &str, message: &str) -> Reply {
        Reply::Error {
            status,
            error_type: error_type.into(),
            message: message.into(),
            headers: vec![],
        }
    }

    /// 429 with `retry-after` in whole seconds.
    pub fn rate_limited(retry_after_secs: u32) -> Reply {
        Reply::Error {
            status: 429,
            error_type: "rate_limit_error".into(),
            message: "Number of requests has exceeded your rate limit".into(),
            headers: vec![("retry-after".into(), retry_after_secs.to_string())],
        }
    }

    /// 429 with `retry-after-ms` (and a coarse `retry-after`).
    pub fn rate_limited_ms(ms: u64) -> Reply {
        Reply::Error {
            status: 429,
            error_type: "rate_limit_error".into(),
            message: "Number of requests has exceeded your rate limit".into(),
            headers: vec![
                ("retry-after-ms".into(), ms.to_string()),
                ("retry-after".into(), ms.div_ceil(1000).to_string()),
            ],
        }
    }

    pub fn overloaded() -> Reply {
        Reply::error(529, "overloaded_error", "Overloaded")
    }
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub headers: Vec<(String, String)>,
    pub raw_body: String,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct FakeState {
    script: Mutex<VecDeque<Reply>>,
    recorded: Mutex<Vec<Recorded>>,
    counter: Mutex<u64>,
}

/// A running fake. Dropping it stops the server.
pub struct FakeLlm {
    pub addr: SocketAddr,
    state: Arc<FakeState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeLlm {
    /// Binds 127.0.0.1 on a random port and replays `script`, one reply per request.
    /// Once the script runs out it answers 500 `api_error` "script exhausted".
    pub async fn start(script: Vec<Reply>) -> std::io::Result<FakeLlm> {
        let state = Arc::new(FakeState::default());
        if let Ok(mut q) = state.script.lock() {
            q.extend(script);
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .with_state(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FakeLlm {
            addr,
            state,
            shutdown: Some(tx),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Appends replies to the script.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        if let Ok(mut q) = self.state.script.lock() {
            q.extend(replies);
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state
            .recorded
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Replies not yet used.
    pub fn remaining(&self) -> usize {
        self.state.script.lock().map(|q| q.len()).unwrap_or(0)
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn error_response(status: u16, error_type: &str, message: &str, request_id: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"type":"error","error":{"type":error_type,"message":message},"request_id":request_id});
    (
        code,
        [
            ("content-type", "application/json".to_string()),
            ("request-id", request_id.to_string()),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn messages(State(st): State<Arc<FakeState>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = {
        let mut c = st.counter.lock().unwrap_or_else(|e| e.into_inner());
        *c += 1;
        *c
    };
    let request_id = format!("req_fake_{n:04}");
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let parsed: Value = serde_json::from_str(&raw_body).unwrap_or(Value::Null);
    if let Ok(mut r) = st.recorded.lock() {
        r.push(Recorded {
            at: Instant::now(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            raw_body,
            body: parsed.clone(),
        });
    }
    if !headers.contains_key("x-api-key") && !headers.contains_key("authorization") {
        return error_response(
            401,
            "authentication_error",
            "x-api-key header is required",
            &request_id,
        );
    }
    if parsed.get("model").and_then(Value::as_str).is_none()
        || parsed.get("max_tokens").and_then(Value::as_u64).is_none()
        || !parsed.get("messages").is_some_and(Value::is_array)
    {
        return error_response(
            400,
            "invalid_request_error",
            "model, max_tokens and messages are required",
            &request_id,
        );
    }
    let next = st.script.lock().ok().and_then(|mut q| q.pop_front());
    match next {
        None => error_response(500, "api_error", "script exhausted", &request_id),
        Some(Reply::Error {
            status,
            error_type,
            message,
            headers: extra,
        }) => {
            let mut resp = error_response(status, &error_type, &message, &request_id);
            for (k, v) in extra {
                if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(k.as_bytes()),
                    axum::http::HeaderValue::from_str(&v),
                ) {
                    resp.headers_mut().insert(k, v);
                }
            }
            resp
        }
        Some(Reply::Stream(frames)) => {
            sse_response(frames, &parsed, request_id, Duration::from_millis(1))
        }
        Some(Reply::SlowStream(frames, pause)) => sse_response(frames, &parsed, request_id, pause),
    }
}

fn sse_response(
    frames: Vec<Frame>,
    parsed: &Value,
    request_id: String,
    pause: Duration,
) -> Response {
    {
        let model = parsed
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("fake")
            .to_string();
        // Each frame goes out in two writes, split mid-line, to exercise the parser.
        let mut chunks: Vec<Bytes> = Vec::new();
        for mut f in frames {
            if f.event == "message_start"
                && let Some(m) = f.data.get_mut("message")
            {
                m["model"] = Value::String(model.clone());
            }
            let text = format!("event: {}\ndata: {}\n\n", f.event, f.data);
            let cut = (0..=text.len() / 2)
                .rev()
                .find(|c| text.is_char_boundary(*c))
                .unwrap_or(0);
            chunks.push(Bytes::from(text[..cut].to_string()));
            chunks.push(Bytes::from(text[cut..].to_string()));
        }
        let stream = futures_util::stream::iter(chunks).then(move |c| async move {
            tokio::time::sleep(pause).await;
            Ok::<Bytes, std::convert::Infallible>(c)
        });
        Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .header("request-id", request_id)
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}
