//! The Anthropic Messages API over reqwest: `x-api-key` + `anthropic-version`, SSE
//! streaming, bounded retries on 408/409/429/5xx/529 (and an overloaded `error` event
//! before any content) honouring `retry-after-ms` / `retry-after`.

use super::sse::{Assembler, SseParser};
use super::types::{CacheControl, LlmEvent, MessagesRequest, SystemBlock, TurnRequest, WireTool};
use super::{LanguageModel, LlmError, TurnStream};
use std::fmt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The API key. Never printed: `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Option<ApiKey> {
        let k = key.into();
        let k = k.trim();
        (!k.is_empty()).then(|| ApiKey(k.to_string()))
    }

    /// `ANTHROPIC_API_KEY`, if set and non-empty (the keyring comes later).
    pub fn from_env() -> Option<ApiKey> {
        std::env::var("ANTHROPIC_API_KEY")
            .ok()
            .and_then(ApiKey::new)
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// How failed requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt (the SDK's default is 2).
    pub max_retries: u32,
    /// First backoff; doubles per retry up to `max_backoff`. Tests set it to 1 ms.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A server-given delay above this is ignored (the SDK honours 0–60 s).
    pub max_retry_after: Duration,
    /// How a retry waits (the timer; tests record it instead of timing it).
    pub wait: crate::wall::Wait,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            wait: crate::wall::Wait::sleep(),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX);
        self.base_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// The delay before retry number `retry` (0-based), honouring the server's hint.
    pub fn delay(&self, retry: u32, headers: &reqwest::header::HeaderMap) -> Duration {
        let hinted = headers
            .get("retry-after-ms")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .map(|ms| ms / 1000.0)
            .or_else(|| {
                headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.trim().parse::<f64>().ok())
            });
        match hinted {
            Some(secs)
                if secs.is_finite()
                    && secs >= 0.0
                    && secs <= self.max_retry_after.as_secs_f64() =>
            {
                Duration::from_secs_f64(secs)
            }
            _ => self.backoff(retry),
        }
    }
}

pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || status >= 500
}

#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    /// Without `/v1`, e.g. "https://api.anthropic.com" or "http://127.0.0.1:PORT".
    pub base_url: String,
    pub model: String,
    pub max_tokens: u32,
    /// Longest wait for the next bytes of a reply (a stalled stream is a fault, retried
    /// like a 5xx); `llm.timeout`.
    pub read_timeout: Duration,
    pub api_key: ApiKey,
    pub retry: RetryPolicy,
}

impl AnthropicConfig {
    /// From the `[llm]` config section and a key.
    pub fn from_section(llm: &crate::config::LlmSection, api_key: ApiKey) -> Self {
        AnthropicConfig {
            base_url: llm.base_url.clone(),
            model: llm.model.clone(),
            max_tokens: llm.max_tokens,
            // Validated when the config was loaded.
            read_timeout: crate::config::parse_duration(&llm.timeout)
                .unwrap_or(Duration::from_secs(120)),
            api_key,
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Clone)]
pub struct AnthropicClient {
    cfg: AnthropicConfig,
    http: reqwest::Client,
}

impl fmt::Debug for AnthropicClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicClient")
            .field("base_url", &self.cfg.base_url)
            .field("model", &self.cfg.model)
            .finish_non_exhaustive()
    }
}

impl AnthropicClient {
    pub fn new(cfg: AnthropicConfig) -> Result<Self, LlmError> {
        // The API key travels in a header: never over plain http to another machine.
        if let Some(why) = crate::config::cleartext_off_loopback(&cfg.base_url) {
            return Err(LlmError::Http(format!("llm.base_url: {why}; use https://")));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(cfg.read_timeout)
            .build()
            .map_err(|e| LlmError::Http(e.to_string()))?;
        Ok(AnthropicClient { cfg, http })
    }

    /// From config plus `ANTHROPIC_API_KEY`; `Err(NoApiKey)` means use the offline planner.
    pub fn from_env(llm: &crate::config::LlmSection) -> Result<Self, LlmError> {
        let key = ApiKey::from_env().ok_or(LlmError::NoApiKey)?;
        Self::new(AnthropicConfig::from_section(llm, key))
    }

    /// A transport failure, named: a stall says which URL sent nothing for how long.
    fn http_error(&self, e: &reqwest::Error) -> LlmError {
        LlmError::Http(if is_timeout(e) {
            format!(
                "{} sent nothing for {:?} (llm.timeout)",
                self.url(),
                self.cfg.read_timeout
            )
        } else {
            e.to_string()
        })
    }

    pub fn config(&self) -> &AnthropicConfig {
        &self.cfg
    }

    pub fn body(&self, req: TurnRequest) -> MessagesRequest {
        MessagesRequest {
            model: self.cfg.model.clone(),
            max_tokens: self.cfg.max_tokens,
            system: req.system.map(|text| {
                vec![SystemBlock {
                    kind: "text".into(),
                    text,
                    cache_control: Some(CacheControl::ephemeral()),
                }]
            }),
            messages: req.messages,
            tools: {
                let n = req.tools.len();
                req.tools
                    .into_iter()
                    .enumerate()
                    .map(|(i, tool)| WireTool {
                        tool,
                        cache_control: (i + 1 == n).then(CacheControl::ephemeral),
                    })
                    .collect()
            },
            tool_choice: req.tool_choice,
            stream: true,
        }
    }

    fn url(&self) -> String {
        format!("{}/v1/messages", self.cfg.base_url.trim_end_matches('/'))
    }

    /// Runs the turn with retries, sending events to `tx`.
    async fn run(
        &self,
        body: MessagesRequest,
        tx: mpsc::Sender<Result<LlmEvent, LlmError>>,
        cancel: CancellationToken,
    ) {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let retries_left = attempt <= self.cfg.retry.max_retries;
            let outcome = tokio::select! {
                _ = cancel.cancelled() => Attempt::Fatal(LlmError::Cancelled),
                o = self.attempt(&body, attempt, &tx) => o,
            };
            match outcome {
                Attempt::Done => return,
                Attempt::Retry { err, delay } if retries_left => {
                    tracing::warn!(attempt, ?delay, error = %err, "model request failed; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => {
                            let _ = tx.send(Err(LlmError::Cancelled)).await;
                            return;
                        }
                        _ = (self.cfg.retry.wait.0)(delay) => {}
                    }
                }
                Attempt::Retry { err, .. } | Attempt::Fatal(err) => {
                    let err = match err {
                        LlmError::Api {
                            status,
                            error_type,
                            message,
                            request_id,
                            ..
                        } => LlmError::Api {
                            status,
                            error_type,
                            message,
                            request_id,
                            attempts: attempt,
                        },
                        LlmError::Stream {
                            error_type,
                            message,
                            request_id,
                            ..
                        } => LlmError::Stream {
                            error_type,
                            message,
                            request_id,
                            attempts: attempt,
                        },
                        other => other,
                    };
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            }
        }
    }

    async fn attempt(
        &self,
        body: &MessagesRequest,
        attempt: u32,
        tx: &mpsc::Sender<Result<LlmEvent, LlmError>>,
    ) -> Attempt {
        let resp = self
            .http
            .post(self.url())
            .header("x-api-key", self.cfg.api_key.expose())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header("x-stainless-retry-count", (attempt - 1).to_string())
            .json(body)
            .send()
            .await;
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => {
                let err = self.http_error(&e);
                return if e.is_connect() || e.is_timeout() {
                    Attempt::Retry {
                        err,
                        delay: self.cfg.retry.backoff(attempt - 1),
                    }
                } else {
                    Attempt::Fatal(err)
                };
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let request_id = headers
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if !resp.status().is_success() {
            let text = resp.text().await.unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let e = v.get("error");
            let field = |k: &str| {
                e.and_then(|e| e.get(k))
                    .and_then(|x| x.as_str())
                    .map(str::to_string)
            };
            let err = LlmError::Api {
                status,
                error_type: field("type").unwrap_or_else(|| "http_error".into()),
                message: field("message").unwrap_or(text),
                request_id: request_id.or_else(|| {
                    v.get("request_id")
                        .and_then(|x| x.as_str())
                        .map(str::to_string)
                }),
                attempts: attempt,
            };
            let should = match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
                Some("true") => true,
                Some("false") => false,
                _ => is_retryable_status(status),
            };
            return if should {
                Attempt::Retry {
                    err,
                    delay: self.cfg.retry.delay(attempt - 1, &headers),
                }
            } else {
                Attempt::Fatal(err)
            };
        }

        let mut parser = SseParser::default();
        let mut asm = Assembler::default();
        asm.request_id = request_id.clone();
        let mut delivered_content = false;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    let stalled = is_timeout(&e);
                    let err = self.http_error(&e);
                    // Nothing shown yet: a stalled reply is retried like a 5xx.
                    return if stalled && !delivered_content {
                        Attempt::Retry {
                            err,
                            delay: self.cfg.retry.backoff(attempt - 1),
                        }
                    } else {
                        Attempt::Fatal(err)
                    };
                }
            };
            for frame in parser.push(&chunk) {
                match asm.handle(&frame) {
                    Ok(events) => {
                        for ev in events {
                            if !matches!(ev, LlmEvent::Started { .. }) {
                                delivered_content = true;
                            }
                            if tx.send(Ok(ev)).await.is_err() {
                                return Attempt::Done; // the consumer went away
                            }
                        }
                        if asm.is_finished() {
                            return Attempt::Done;
                        }
                    }
                    Err(se) => {
                        let err = LlmError::Stream {
                            error_type: se.error_type.clone(),
                            message: se.message,
                            request_id: request_id.clone(),
                            attempts: attempt,
                        };
                        // Retrying after text was shown would duplicate it: only an
                        // error before any content is retried (as a 529 would be).
                        let retryable = matches!(
                            se.error_type.as_str(),
                            "overloaded_error" | "api_error" | "rate_limit_error"
                        );
                        return if retryable && !delivered_content {
                            Attempt::Retry {
                                err,
                                delay: self.cfg.retry.backoff(attempt - 1),
                            }
                        } else {
                            Attempt::Fatal(err)
                        };
                    }
                }
            }
        }
        Attempt::Fatal(LlmError::Truncated)
    }
}

enum Attempt {
    Done,
    Retry { err: LlmError, delay: Duration },
    Fatal(LlmError),
}

impl LanguageModel for AnthropicClient {
    fn stream_turn(&self, request: TurnRequest) -> TurnStream {
        let (tx, rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let body = self.body(request);
        let me = self.clone();
        let c = cancel.clone();
        tokio::spawn(async move { me.run(body, tx, c).await });
        TurnStream::new(rx, cancel)
    }

    fn name(&self) -> String {
        self.cfg.model.clone()
    }
}

/// A read that hit `read_timeout`; reqwest reports a stalled body as a decode error
/// whose source is the timeout.
fn is_timeout(e: &reqwest::Error) -> bool {
    if e.is_timeout() {
        return true;
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if s.to_string().contains("timed out") {
            return true;
        }
        src = s.source();
    }
    false
}
