//! A page on loopback that shows where a held MCP write stands ("waiting for your
//! phone", then what happened), for URL-mode elicitation: a client that supports it
//! shows the person the link while the call waits for the device. One unguessable path
//! per write; read-only; nothing on it a person could act with (approval happens on the
//! phone), and no token or secret is ever on it.

use crate::store::Store;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct StatusPages {
    base: String,
    /// Path token → action id.
    pages: Mutex<HashMap<String, String>>,
    store: Arc<dyn Store>,
}

impl StatusPages {
    /// Serves on 127.0.0.1 at a free port for the life of the process.
    pub async fn start(store: Arc<dyn Store>) -> std::io::Result<Arc<StatusPages>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let pages = Arc::new(StatusPages {
            base,
            pages: Mutex::new(HashMap::new()),
            store,
        });
        let app = axum::Router::new()
            .route("/approval/{token}", axum::routing::get(page))
            .with_state(pages.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the MCP status page server stopped");
            }
        });
        Ok(pages)
    }

    /// The page for `action_id`.
    pub fn url_for(&self, action_id: &str) -> String {
        let token = crate::wall::random_token("");
        self.pages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), action_id.to_string());
        format!("{}/approval/{token}", self.base)
    }
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c if c.is_control() => " ".into(),
            c => c.to_string(),
        })
        .collect()
}

async fn page(State(pages): State<Arc<StatusPages>>, Path(token): Path<String>) -> Response {
    let id = pages
        .pages
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&token)
        .cloned();
    let Some(id) = id else {
        return (axum::http::StatusCode::NOT_FOUND, "no such approval").into_response();
    };
    let a = match pages.store.get_action(&id) {
        Ok(a) => a,
        Err(e) => {
            return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
    };
    let waiting = a.state == crate::core::domain::ActionState::AwaitingConsent;
    let now = if waiting {
        "Waiting for your yes or no on your phone. This page refreshes itself."
    } else {
        "Done here: the agent that asked has the answer."
    };
    let refresh = if waiting {
        "<meta http-equiv=\"refresh\" content=\"5\">"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">{refresh}<title>dealflow: {title}</title></head>\
         <body><h1>{title}</h1><p>{kind} to {target}</p><p><b>{state}</b>{outcome}</p><p>{now}</p>\
         <p><small>{id}</small></p></body></html>",
        title = escape(&a.title),
        kind = escape(a.kind().as_str()),
        target = escape(&a.params.target()),
        state = escape(&a.state.to_string()),
        outcome = a
            .outcome
            .as_deref()
            .map(|o| format!(": {}", escape(o)))
            .unwrap_or_default(),
        id = escape(&a.id),
    ))
    .into_response()
}
