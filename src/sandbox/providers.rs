//! Emulated Gmail, Google Calendar and Slack Web API endpoints.

use super::state::SandboxState;
use std::sync::Arc;

pub fn router(_state: Arc<SandboxState>) -> axum::Router {
    axum::Router::new()
}
