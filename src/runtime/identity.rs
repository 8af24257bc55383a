//! Who is acting: the signed-in identity (Auth0 `sub` and name) and the Unix account
//! the process runs as, with the SSH origin. Never `$USER` or `$LOGNAME`: anyone can
//! set those, so `USER=mallory dealflow actions reject …` must still be audited as the
//! account that ran it.

use crate::auth::keyring::SecretStore;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The keyring entry `dealflow login` writes: the verified `sub` and name of the
/// signed-in user, so commands that do not talk to Auth0 can still name them.
pub const IDENTITY_ENTRY: &str = "login-identity";

/// The signed-in user as `dealflow login` verified them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedIn {
    pub sub: String,
    #[serde(default)]
    pub name: String,
    /// An emulated sandbox user: the same `sub` in every Unix account's sandbox, so it
    /// names no one across accounts (never stored: a real sign-in is never emulated).
    #[serde(skip)]
    pub emulated: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub signed_in: Option<SignedIn>,
    /// The Unix account of the process's effective uid.
    pub unix_user: String,
    pub uid: u32,
    /// The SSH client's address, when this runs in an SSH session.
    pub ssh: Option<String>,
}

impl Identity {
    /// This process's identity, with `signed_in` as known.
    pub fn local(signed_in: Option<SignedIn>) -> Identity {
        let uid = effective_uid();
        Identity {
            signed_in,
            unix_user: unix_user_name(uid).unwrap_or_else(|| format!("uid:{uid}")),
            uid,
            ssh: ssh_origin(),
        }
    }

    /// How audit rows name the actor: `user:<sub>` when signed in, `unix:<account>`
    /// otherwise.
    pub fn actor(&self) -> String {
        match &self.signed_in {
            Some(s) => format!("user:{}", s.sub),
            None => format!("unix:{}", self.unix_user),
        }
    }

    /// The audit detail's `origin`: the Unix account (from the uid), the SSH origin and
    /// the signed-in name.
    pub fn origin(&self) -> serde_json::Value {
        serde_json::json!({
            "unix_user": self.unix_user,
            "uid": self.uid,
            "ssh": self.ssh,
            "name": self.signed_in.as_ref().map(|s| s.name.clone()),
        })
    }
}

static CURRENT: OnceLock<Identity> = OnceLock::new();

/// Fixes the process's identity once (the composition root does, after reading the
/// keyring); later calls are ignored.
pub fn set_current(id: Identity) {
    let _ = CURRENT.set(id);
}

/// The process's identity: what [`set_current`] fixed, or the Unix account alone.
pub fn current() -> &'static Identity {
    CURRENT.get_or_init(|| Identity::local(None))
}

/// The identity `dealflow login` stored, if any. A keyring that cannot be read counts as
/// not signed in (the actor is then the Unix account, which is still true).
pub fn stored_sign_in(keyring: &dyn SecretStore) -> Option<SignedIn> {
    let text = keyring.get(IDENTITY_ENTRY).ok().flatten()?;
    serde_json::from_str(&text).ok()
}

pub fn store_sign_in(
    keyring: &dyn SecretStore,
    who: &SignedIn,
) -> Result<(), crate::auth::AuthError> {
    let text = serde_json::to_string(who).unwrap_or_default();
    keyring.set(IDENTITY_ENTRY, &text)
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The account name of `uid` from the system's user database (NSS, so LDAP users too).
fn unix_user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pwd`'s
    // strings, which are copied out before it is dropped.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// The client address of the SSH session this runs in, from `SSH_CONNECTION`
/// ("client_ip client_port server_ip server_port") or the older `SSH_CLIENT`. Where a
/// command was typed from is context, not authority: nothing is decided by it.
pub fn ssh_origin() -> Option<String> {
    ["SSH_CONNECTION", "SSH_CLIENT"]
        .into_iter()
        .filter_map(|v| std::env::var(v).ok())
        .find_map(|s| s.split_whitespace().next().map(str::to_string))
        .filter(|ip| !ip.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unix_account_comes_from_the_uid_not_the_environment() {
        let id = Identity::local(None);
        // The uid's own name, whatever $USER says (tests run as a real account).
        assert_eq!(id.uid, effective_uid());
        assert!(!id.unix_user.is_empty());
        assert_eq!(id.actor(), format!("unix:{}", id.unix_user));
        let signed = Identity::local(Some(SignedIn {
            emulated: false,
            sub: "auth0|rep".into(),
            name: "Rep".into(),
        }));
        assert_eq!(signed.actor(), "user:auth0|rep");
        assert_eq!(signed.origin()["unix_user"], id.unix_user);
    }
}
