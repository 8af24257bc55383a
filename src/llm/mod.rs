//! The language model adapter: a small Anthropic Messages API client on reqwest
//! (`anthropic`), its wire types (`types`) and the SSE parser (`sse`).
//!
//! Callers use the [`LanguageModel`] trait: stream one turn, get a [`TurnStream`] of
//! [`LlmEvent`]s. The offline planner implements the same trait.

pub mod anthropic;
pub mod sse;
pub mod types;

pub use anthropic::{AnthropicClient, AnthropicConfig, ApiKey, RetryPolicy};
pub use types::*;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Everything that can go wrong talking to the model, with what the API said.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("no API key: set ANTHROPIC_API_KEY (or use the offline planner)")]
    NoApiKey,
    /// A non-2xx answer (after any retries).
    #[error("model API {status} {error_type}: {message} (request-id {})", request_id.as_deref().unwrap_or("none"))]
    Api {
        status: u16,
        error_type: String,
        message: String,
        request_id: Option<String>,
        /// How many attempts were made in all.
        attempts: u32,
    },
    /// An `error` event inside a 200 stream (after any retries).
    #[error("model stream error {error_type}: {message} (request-id {})", request_id.as_deref().unwrap_or("none"))]
    Stream {
        error_type: String,
        message: String,
        request_id: Option<String>,
        attempts: u32,
    },
    #[error("model connection failed: {0}")]
    Http(String),
    #[error("model stream ended before message_stop")]
    Truncated,
    #[error("model turn cancelled")]
    Cancelled,
}

impl LlmError {
    pub fn status(&self) -> Option<u16> {
        match self {
            LlmError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            LlmError::Api { request_id, .. } | LlmError::Stream { request_id, .. } => {
                request_id.as_deref()
            }
            _ => None,
        }
    }
}

/// The events of one turn. Dropping it (or calling [`TurnStream::cancel`]) aborts the
/// request, so no stale text arrives after Esc.
pub struct TurnStream {
    rx: mpsc::Receiver<Result<LlmEvent, LlmError>>,
    cancel: CancellationToken,
}

impl TurnStream {
    pub fn new(rx: mpsc::Receiver<Result<LlmEvent, LlmError>>, cancel: CancellationToken) -> Self {
        TurnStream { rx, cancel }
    }

    /// A stream that yields the given events, for planners that need no network.
    pub fn from_events(events: Vec<Result<LlmEvent, LlmError>>) -> Self {
        let (tx, rx) = mpsc::channel(events.len().max(1));
        for e in events {
            let _ = tx.try_send(e);
        }
        TurnStream::new(rx, CancellationToken::new())
    }

    pub async fn next(&mut self) -> Option<Result<LlmEvent, LlmError>> {
        self.rx.recv().await
    }

    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Drains the stream into the finished turn.
    pub async fn collect(mut self) -> Result<AssistantTurn, LlmError> {
        while let Some(ev) = self.next().await {
            if let LlmEvent::Done(turn) = ev? {
                return Ok(turn);
            }
        }
        Err(LlmError::Truncated)
    }
}

impl Drop for TurnStream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A model that can stream one turn. Must be called inside a tokio runtime.
pub trait LanguageModel: Send + Sync {
    /// Starts the turn; events (or one terminal error) arrive on the returned stream.
    fn stream_turn(&self, request: TurnRequest) -> TurnStream;
    /// For the status bar and labels ("claude-sonnet-4-5", "offline planner").
    fn name(&self) -> String;
}
