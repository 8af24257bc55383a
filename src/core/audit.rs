//! Audit entries and their hash chain.
//!
//! Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical
//! JSON (fixed field order; `detail` maps are key-sorted), so altering, removing or
//! reordering any row breaks every hash after it. Verification is pure: the store feeds
//! entries in sequence order.

use super::domain::{Millis, Surface};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry not yet appended: the store assigns `seq`, `prev_hash` and `hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    pub ts: Millis,
    /// Who acted: "user:<name>", "agent", "mcp:<client>", "system".
    pub actor: String,
    pub surface: Option<Surface>,
    /// What happened, dotted: "action.proposed", "action.approved", "permissions.changed"…
    pub event: String,
    pub action_id: Option<String>,
    /// "ok", "denied", "failed", "timeout"…
    pub outcome: String,
    /// Structured evidence (consent, reasons, provider answer). Never a token.
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub ts: Millis,
    pub actor: String,
    pub surface: Option<Surface>,
    pub event: String,
    pub action_id: Option<String>,
    pub outcome: String,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The hashed view of an entry: everything but its own hash.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    ts: Millis,
    actor: &'a str,
    surface: Option<Surface>,
    event: &'a str,
    action_id: Option<&'a str>,
    outcome: &'a str,
    detail: &'a serde_json::Value,
}

/// Canonical bytes of the entry as it will be hashed.
pub fn canonical_bytes(seq: i64, prev_hash: &str, e: &NewAuditEntry) -> Vec<u8> {
    let c = Canonical {
        seq,
        ts: e.ts,
        actor: &e.actor,
        surface: e.surface,
        event: &e.event,
        action_id: e.action_id.as_deref(),
        outcome: &e.outcome,
        detail: &e.detail,
    };
    let mut out = Vec::with_capacity(256);
    write_canonical(&mut out, prev_hash, &c);
    out
}

/// `prev_hash`, a newline, then the canonical JSON, appended to `out`.
fn write_canonical(out: &mut Vec<u8>, prev_hash: &str, c: &Canonical<'_>) {
    out.extend_from_slice(prev_hash.as_bytes());
    out.push(b'\n');
    // serde_json::Value objects are BTreeMaps here (no preserve_order), so key order is
    // canonical. Serialising into memory cannot fail; on the impossible error the bytes
    // (and so the hash) are wrong, which verification reports.
    let _ = serde_json::to_writer(&mut *out, c);
}

pub fn entry_hash(seq: i64, prev_hash: &str, e: &NewAuditEntry) -> String {
    hex::encode(Sha256::digest(canonical_bytes(seq, prev_hash, e)))
}

/// Seals a new entry after `prev` (the last entry's hash, or [`GENESIS`]).
pub fn seal(seq: i64, prev_hash: &str, e: NewAuditEntry) -> AuditEntry {
    let hash = entry_hash(seq, prev_hash, &e);
    AuditEntry {
        seq,
        ts: e.ts,
        actor: e.actor,
        surface: e.surface,
        event: e.event,
        action_id: e.action_id,
        outcome: e.outcome,
        detail: e.detail,
        prev_hash: prev_hash.to_string(),
        hash,
    }
}

impl AuditEntry {
    pub fn unsealed(&self) -> NewAuditEntry {
        NewAuditEntry {
            ts: self.ts,
            actor: self.actor.clone(),
            surface: self.surface,
            event: self.event.clone(),
            action_id: self.action_id.clone(),
            outcome: self.outcome.clone(),
            detail: self.detail.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry #{seq}: {problem}")]
pub struct ChainBreak {
    /// The first sequence number at which the chain stops holding.
    pub seq: i64,
    pub problem: String,
}

/// Incremental verifier: feed entries in stored order.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
    /// Reused for each entry's canonical bytes (verification allocates nothing per entry).
    buf: Vec<u8>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_hash: GENESIS.to_string(),
            buf: Vec::with_capacity(512),
        }
    }
}

impl ChainVerifier {
    pub fn push(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        if e.seq != self.expected_seq {
            return Err(ChainBreak {
                seq: self.expected_seq,
                problem: if e.seq > self.expected_seq {
                    format!(
                        "missing: the next entry found is #{} (removed rows?)",
                        e.seq
                    )
                } else {
                    format!(
                        "out of order: #{} found where #{} belongs",
                        e.seq, self.expected_seq
                    )
                },
            });
        }
        if e.prev_hash != self.prev_hash {
            return Err(ChainBreak {
                seq: e.seq,
                problem: "does not link to the entry before it (removed or reordered rows?)".into(),
            });
        }
        self.buf.clear();
        write_canonical(
            &mut self.buf,
            &e.prev_hash,
            &Canonical {
                seq: e.seq,
                ts: e.ts,
                actor: &e.actor,
                surface: e.surface,
                event: &e.event,
                action_id: e.action_id.as_deref(),
                outcome: &e.outcome,
                detail: &e.detail,
            },
        );
        let digest = Sha256::digest(&self.buf);
        let mut hex_buf = [0u8; 64];
        let matches = hex::encode_to_slice(digest, &mut hex_buf).is_ok()
            && hex_buf.as_slice() == e.hash.as_bytes();
        if !matches {
            return Err(ChainBreak {
                seq: e.seq,
                problem: "content does not match its hash (the row was altered)".into(),
            });
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&e.hash);
        Ok(())
    }

    /// Entries verified so far.
    pub fn count(&self) -> i64 {
        self.expected_seq - 1
    }

    pub fn head(&self) -> &str {
        &self.prev_hash
    }

    /// Checks the end of the chain against the head the store recorded, which catches
    /// rows cut off the end.
    pub fn finish(&self, recorded_count: i64, recorded_head: &str) -> Result<i64, ChainBreak> {
        if recorded_count != self.count() || recorded_head != self.prev_hash {
            return Err(ChainBreak {
                seq: self.count() + 1,
                problem: format!(
                    "the log ends after #{} but {} entries were recorded (rows removed from the end?)",
                    self.count(),
                    recorded_count
                ),
            });
        }
        Ok(self.count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64) -> NewAuditEntry {
        NewAuditEntry {
            ts: n,
            actor: "user:ana".into(),
            surface: Some(Surface::Cli),
            event: "action.approved".into(),
            action_id: Some(format!("a{n}")),
            outcome: "ok".into(),
            detail: serde_json::json!({"z": 1, "a": [1, 2]}),
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|i| {
                let e = seal(i, &prev, entry(i));
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn verify(es: &[AuditEntry]) -> Result<(), ChainBreak> {
        let mut v = ChainVerifier::default();
        es.iter().try_for_each(|e| v.push(e))
    }

    #[test]
    fn the_verifier_hashes_exactly_what_seal_hashed() {
        let c = chain(3);
        for e in &c {
            assert_eq!(entry_hash(e.seq, &e.prev_hash, &e.unsealed()), e.hash);
        }
        let mut c = chain(3);
        c[1].hash = c[1].hash.to_uppercase();
        assert_eq!(verify(&c).unwrap_err().seq, 2);
    }

    #[test]
    fn intact_chain_verifies() {
        assert!(verify(&chain(10)).is_ok());
    }

    #[test]
    fn altered_removed_reordered_are_caught_at_the_right_row() {
        let mut c = chain(10);
        c[4].outcome = "denied".into();
        assert_eq!(verify(&c).unwrap_err().seq, 5);

        let mut c = chain(10);
        c.remove(3);
        assert_eq!(verify(&c).unwrap_err().seq, 4);

        let mut c = chain(10);
        c.swap(6, 7);
        assert_eq!(verify(&c).unwrap_err().seq, 7);
    }
}
