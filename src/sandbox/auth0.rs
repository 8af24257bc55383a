//! Emulated Auth0: device flow, token grants, Token Vault exchange, CIBA, revocation,
//! userinfo, discovery/JWKS and the My Account connected-accounts API.

use super::state::SandboxState;
use std::sync::Arc;

pub fn router(_state: Arc<SandboxState>) -> axum::Router {
    axum::Router::new()
}
