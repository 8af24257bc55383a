//! How a process and a running sandbox prove to each other that both hold the key in
//! the owner's URL file, without either sending it: each answers a fresh nonce with an
//! HMAC under the key, labelled by role so one side's proof is never the other's. A
//! process that finds a stranger on the recorded port (the sandbox died; another user
//! bound the port) gets no proof and starts its own sandbox instead of sending mail
//! through the stranger.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const CLIENT: &str = "client";
pub const SERVER: &str = "server";

/// Hex HMAC-SHA256 of `role:nonce` under `key`.
pub fn proof(key: &str, role: &str, nonce: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(role.as_bytes());
    mac.update(b":");
    mac.update(nonce.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `given` is `role`'s proof for `nonce` (constant time).
pub fn check(key: &str, role: &str, nonce: &str, given: &str) -> bool {
    super::auth0::model::constant_eq(proof(key, role, nonce).as_bytes(), given.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_are_bound_to_key_role_and_nonce() {
        let p = proof("k", CLIENT, "n1");
        assert!(check("k", CLIENT, "n1", &p));
        assert!(
            !check("k", SERVER, "n1", &p),
            "a client proof is not a server's"
        );
        assert!(!check("k", CLIENT, "n2", &p), "nor good for another nonce");
        assert!(!check("other", CLIENT, "n1", &p), "nor under another key");
    }
}
