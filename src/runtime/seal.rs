//! Consent the store cannot forge: a per-user key in the keyring MACs every recorded
//! consent (so a row written around dealflow — `state='approved'` and an evidence JSON
//! typed into SQLite or Redis — never runs) and anchors the audit chain with a
//! checkpoint (count and head hash) kept beside it, so a truncated, wiped or rewritten
//! log is reported by `audit verify`.
//!
//! The key never leaves the keyring and this process's memory; a teammate who can read a
//! shared Redis, or an operator, has the data but not the authority.

use crate::auth::AuthError;
use crate::auth::keyring::SecretStore;
use crate::core::audit::AuditEntry;
use crate::core::consent::{Evidence, Recorded, Seal, payload_digest, seal_message};
use crate::core::domain::{Action, Millis};
use crate::store::{AuditAnchor, Store};
use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};

/// The keyring entry of the consent key (32 random bytes, hex).
pub const CONSENT_KEY_ENTRY: &str = "consent-key";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "no consent key: {0} (dealflow keeps a per-user key in the keyring to bind consent to you; set DEALFLOW_KEYRING=file to opt in to a 0600 file)"
    )]
    NoKey(String),
}

pub struct ConsentKey {
    key: hmac::Key,
}

impl std::fmt::Debug for ConsentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsentKey([redacted])")
    }
}

impl ConsentKey {
    fn from_hex(text: &str) -> Option<ConsentKey> {
        let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32)?;
        Some(ConsentKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        })
    }

    /// The key in `keyring`, created on first use. Creation holds a per-uid lock file so
    /// two first uses at once agree on one key.
    pub fn load_or_create(keyring: &dyn SecretStore) -> Result<ConsentKey, AuthError> {
        if let Some(k) = keyring
            .get(CONSENT_KEY_ENTRY)?
            .and_then(|t| Self::from_hex(&t))
        {
            return Ok(k);
        }
        let _lock = creation_lock();
        if let Some(k) = keyring
            .get(CONSENT_KEY_ENTRY)?
            .and_then(|t| Self::from_hex(&t))
        {
            return Ok(k);
        }
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG is available");
        keyring.set(CONSENT_KEY_ENTRY, &hex::encode(bytes))?;
        let stored = keyring
            .get(CONSENT_KEY_ENTRY)?
            .and_then(|t| Self::from_hex(&t))
            .ok_or_else(|| AuthError::Keyring("the consent key did not read back".into()))?;
        Ok(stored)
    }

    /// A key for tests and benchmarks that must not touch a keyring.
    pub fn ephemeral() -> ConsentKey {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG is available");
        ConsentKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        }
    }

    /// A MAC over a cache this user's process wrote (the calibration snapshot), so a
    /// cache written around dealflow is not trusted. Domain-separated from consent.
    pub fn mac_cache(&self, name: &str, body: &[u8]) -> String {
        self.mac(&[b"dealflow-cache\0", name.as_bytes(), b"\0", body].concat())
    }

    pub fn verify_cache(&self, name: &str, body: &[u8], tag_hex: &str) -> bool {
        self.verify(
            &[b"dealflow-cache\0", name.as_bytes(), b"\0", body].concat(),
            tag_hex,
        )
    }

    fn mac(&self, msg: &[u8]) -> String {
        hex::encode(hmac::sign(&self.key, msg).as_ref())
    }

    fn verify(&self, msg: &[u8], tag_hex: &str) -> bool {
        hex::decode(tag_hex).is_ok_and(|tag| hmac::verify(&self.key, msg, &tag).is_ok())
    }

    /// Seals `evidence` for `a` as it is now (its id, version and payload), approved
    /// under a gate named `gate`.
    pub fn seal(&self, a: &Action, gate: &str, evidence: Evidence, at: Millis) -> Recorded {
        let digest = payload_digest(&a.params);
        let mac = self.mac(&seal_message(
            &a.id, a.version, at, &digest, gate, &evidence,
        ));
        Recorded {
            evidence,
            seal: Some(Seal {
                version: a.version,
                at,
                gate: gate.to_string(),
                mac,
            }),
        }
    }

    /// The evidence recorded on `a`, if its seal verifies for `a`'s id and current
    /// payload; otherwise why not.
    pub fn open<'a>(&self, a: &'a Action) -> Result<&'a Evidence, String> {
        let r = a
            .evidence
            .as_ref()
            .ok_or_else(|| "no consent recorded".to_string())?;
        let seal = r
            .seal
            .as_ref()
            .ok_or_else(|| "the evidence carries no seal".to_string())?;
        if seal.version > a.version {
            return Err("the seal names a later version than the action".into());
        }
        let digest = payload_digest(&a.params);
        let msg = seal_message(
            &a.id,
            seal.version,
            seal.at,
            &digest,
            &seal.gate,
            &r.evidence,
        );
        if self.verify(&msg, &seal.mac) {
            Ok(&r.evidence)
        } else {
            Err("its seal does not match this action, payload and key".into())
        }
    }
}

/// How a seal is named in the audit entry of the execution it allowed.
pub fn seal_id(seal: &Seal) -> String {
    seal.mac.chars().take(24).collect()
}

/// Clocks of two processes on a shared store may disagree; a use of a seal is looked for
/// from this long before it was made.
const SKEW_MS: Millis = 24 * 3600 * 1000;

/// Whether the log already records an execution on `seal`: consent is single-use, so a
/// sealed row restored to `approved` (a replay) never runs twice. The log is anchored in
/// the keyring, so that record cannot be taken out unseen.
pub fn already_used(
    store: &dyn Store,
    action_id: &str,
    seal: &Seal,
) -> Result<bool, crate::store::StoreError> {
    let id = seal_id(seal);
    Ok(store
        .audit_about(action_id, seal.at.saturating_sub(SKEW_MS))?
        .iter()
        .any(|e| e.event == "action.executed" && e.detail["seal"].as_str() == Some(id.as_str())))
}

fn creation_lock() -> Option<std::fs::File> {
    // In the user's own state dir: a shared temp dir would let another account hold
    // (or pre-create) the lock.
    let dir = crate::config::state_dir()?;
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("consent-key.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    f.lock().ok()?;
    Some(f)
}

/// Where the process's consent key comes from (set once by the composition root).
static KEYRING: OnceLock<Arc<dyn SecretStore>> = OnceLock::new();
static KEY: OnceLock<Result<Arc<ConsentKey>, String>> = OnceLock::new();

/// Names the keyring the process's consent key lives in. Without this call the key is
/// looked for in [`crate::auth::keyring::open_default`].
pub fn use_keyring(store: Arc<dyn SecretStore>) {
    let _ = KEYRING.set(store);
}

/// This user's consent key, loaded (or created) on first use.
pub fn key() -> Result<Arc<ConsentKey>, SealError> {
    KEY.get_or_init(|| {
        let keyring = match KEYRING.get() {
            Some(k) => k.clone(),
            None => crate::auth::keyring::open_default().map_err(|e| e.to_string())?,
        };
        ConsentKey::load_or_create(keyring.as_ref())
            .map(Arc::new)
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(SealError::NoKey)
}

/// The keyring the key lives in, for the checkpoint (and the process's other secrets:
/// the Redis credential).
pub fn process_keyring() -> Option<Arc<dyn SecretStore>> {
    keyring()
}

fn keyring() -> Option<Arc<dyn SecretStore>> {
    match KEYRING.get() {
        Some(k) => Some(k.clone()),
        None => crate::auth::keyring::open_default().ok(),
    }
}

/// The audit checkpoint as kept in the keyring, one per store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub mac: String,
}

fn checkpoint_entry(store: &dyn Store) -> String {
    use sha2::Digest;
    let id = hex::encode(sha2::Sha256::digest(store.describe().as_bytes()));
    format!("audit-checkpoint-{}", &id[..24])
}

fn checkpoint_message(entry: &str, seq: i64, hash: &str) -> Vec<u8> {
    format!("dealflow-audit-checkpoint-v1\0{entry}\0{seq}\0{hash}").into_bytes()
}

/// What the checkpoint says about the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Anchor {
    /// The log holds the checkpointed entry unchanged (and perhaps more).
    Holds { seq: i64 },
    /// No checkpoint for this store in this keyring (first use here, or another machine).
    Missing,
    /// The checkpoint itself does not verify under the key.
    Forged,
    /// The log is shorter than the checkpoint saw: entries were cut (or all, `now` = 0).
    Truncated { seen: i64, now: i64 },
    /// The checkpointed entry is there but differs: the log was rewritten.
    Rewritten { seq: i64 },
}

impl std::fmt::Display for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Anchor::Holds { seq } => write!(f, "matches the keyring checkpoint at #{seq}"),
            Anchor::Missing => f.write_str("no keyring checkpoint for this store yet"),
            Anchor::Forged => f.write_str("the keyring checkpoint does not verify"),
            Anchor::Truncated { seen, now: 0 } => write!(
                f,
                "WIPED: the log is empty but the keyring checkpoint saw {seen} entries"
            ),
            Anchor::Truncated { seen, now } => write!(
                f,
                "TRUNCATED: the log ends at #{now} but the keyring checkpoint saw #{seen}"
            ),
            Anchor::Rewritten { seq } => write!(
                f,
                "REWRITTEN: entry #{seq} differs from the keyring checkpoint"
            ),
        }
    }
}

/// Keeps the checkpoint in the keyring, refreshed on every append.
pub struct KeyringAnchor {
    keyring: Arc<dyn SecretStore>,
    key: Arc<ConsentKey>,
}

impl KeyringAnchor {
    /// The anchor for this process's keyring and key.
    pub fn open() -> Result<KeyringAnchor, SealError> {
        let key = key()?;
        let keyring = keyring().ok_or_else(|| SealError::NoKey("no keyring".into()))?;
        Ok(KeyringAnchor { keyring, key })
    }

    pub fn with(keyring: Arc<dyn SecretStore>, key: Arc<ConsentKey>) -> KeyringAnchor {
        KeyringAnchor { keyring, key }
    }

    fn read(&self, entry: &str) -> Option<Checkpoint> {
        let text = self.keyring.get(entry).ok().flatten()?;
        serde_json::from_str(&text).ok()
    }

    fn write(&self, entry: &str, seq: i64, hash: &str) {
        let cp = Checkpoint {
            seq,
            hash: hash.to_string(),
            mac: self.key.mac(&checkpoint_message(entry, seq, hash)),
        };
        if let Err(e) = self
            .keyring
            .set(entry, &serde_json::to_string(&cp).unwrap_or_default())
        {
            tracing::warn!(error = %e, "cannot refresh the audit checkpoint in the keyring");
        }
    }

    /// Checks `store`'s log against the checkpoint.
    pub fn check(&self, store: &dyn Store) -> Result<Anchor, crate::store::StoreError> {
        let entry = checkpoint_entry(store);
        let Some(cp) = self.read(&entry) else {
            return Ok(Anchor::Missing);
        };
        if !self
            .key
            .verify(&checkpoint_message(&entry, cp.seq, &cp.hash), &cp.mac)
        {
            return Ok(Anchor::Forged);
        }
        let at = store.audit_page(cp.seq - 1, 1)?;
        Ok(match at.first() {
            Some(e) if e.seq == cp.seq && e.hash == cp.hash => Anchor::Holds { seq: cp.seq },
            // The entry is changed, or gone from the middle of the log.
            Some(_) => Anchor::Rewritten { seq: cp.seq },
            None => Anchor::Truncated {
                seen: cp.seq,
                now: last_seq(store)?,
            },
        })
    }
}

/// The last entry really in the log (the head record may have been moved with it).
fn last_seq(store: &dyn Store) -> Result<i64, crate::store::StoreError> {
    let mut last = 0;
    loop {
        let page = store.audit_page(last, 5000)?;
        match page.last() {
            Some(e) => last = e.seq,
            None => return Ok(last),
        }
    }
}

impl KeyringAnchor {
    /// Re-anchors at the log as it is now, after the person said the change was theirs
    /// (a store they deleted and started again, say). Returns what the old checkpoint
    /// had seen, for the audit entry that records the reset.
    pub fn reset(&self, store: &dyn Store) -> Option<(i64, String)> {
        let entry = checkpoint_entry(store);
        let old = self.read(&entry).map(|cp| (cp.seq, cp.hash));
        let _ = self.keyring.delete(&entry);
        old
    }
}

impl AuditAnchor for KeyringAnchor {
    fn appended(&self, store: &dyn Store, e: &AuditEntry) {
        let entry = checkpoint_entry(store);
        // The new head must extend what was checkpointed; if the old entry is gone or
        // changed, the checkpoint is kept as the evidence of it.
        match self.check(store) {
            Ok(Anchor::Holds { seq }) if seq >= e.seq => {}
            Ok(Anchor::Holds { .. } | Anchor::Missing) => self.write(&entry, e.seq, &e.hash),
            Ok(other) => {
                tracing::warn!(problem = %other, "audit log no longer matches its checkpoint; keeping the checkpoint");
            }
            Err(err) => tracing::warn!(error = %err, "cannot check the audit checkpoint"),
        }
    }
}
