//! Audit entries and their hash chain.
//!
//! Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical
//! JSON (fixed field order; `detail` maps are key-sorted), so altering, removing or
//! reordering any row breaks every hash after it. Verification is pure: the store feeds
//! entries in sequence order.

use super::domain::{Millis, Surface};
use serde::{Deserialize, Serialize};

mod canonical;

use self::canonical::{Canonical, Detail, hash_matches};
pub use canonical::{canonical_bytes, entry_hash};
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

/// An entry as a store keeps it, borrowed: `detail_json` is the detail's JSON text as
/// stored (`serde_json::Value`'s compact text, which is its canonical form).
#[derive(Debug, Clone, Copy)]
pub struct StoredEntry<'a> {
    pub seq: i64,
    pub ts: Millis,
    pub actor: &'a str,
    pub surface: Option<Surface>,
    pub event: &'a str,
    pub action_id: Option<&'a str>,
    pub outcome: &'a str,
    pub detail_json: &'a str,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

/// The break an entry whose content does not hash to its recorded hash is.
pub fn altered(seq: i64) -> ChainBreak {
    ChainBreak {
        seq,
        problem: "content does not match its hash (the row was altered)".into(),
    }
}

impl StoredEntry<'_> {
    /// Whether the entry's content, after its recorded `prev_hash`, hashes to its
    /// recorded `hash`: the half of a check that needs no other entry.
    pub fn hash_matches(&self) -> bool {
        hash_matches(
            self.prev_hash,
            self.hash,
            &Canonical {
                seq: self.seq,
                ts: self.ts,
                actor: self.actor,
                surface: self.surface,
                event: self.event,
                action_id: self.action_id,
                outcome: self.outcome,
                detail: Detail::Json(self.detail_json),
            },
        )
    }
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
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_hash: GENESIS.to_string(),
        }
    }
}

impl ChainVerifier {
    /// A verifier that picks the chain up at `next_seq`, whose predecessor's hash is
    /// `prev_hash` (a range of the log checked apart; whoever joins the ranges checks
    /// that the one before really ends there).
    pub fn resume(next_seq: i64, prev_hash: &str) -> ChainVerifier {
        ChainVerifier {
            expected_seq: next_seq,
            prev_hash: prev_hash.to_string(),
        }
    }

    pub fn push(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        self.check(
            e.seq,
            &e.prev_hash,
            &e.hash,
            &Canonical {
                seq: e.seq,
                ts: e.ts,
                actor: &e.actor,
                surface: e.surface,
                event: &e.event,
                action_id: e.action_id.as_deref(),
                outcome: &e.outcome,
                detail: Detail::Value(&e.detail),
            },
        )
    }

    /// Verifies an entry straight from the store's row, without parsing its detail.
    pub fn push_stored(&mut self, e: &StoredEntry<'_>) -> Result<(), ChainBreak> {
        self.check(
            e.seq,
            e.prev_hash,
            e.hash,
            &Canonical {
                seq: e.seq,
                ts: e.ts,
                actor: e.actor,
                surface: e.surface,
                event: e.event,
                action_id: e.action_id,
                outcome: e.outcome,
                detail: Detail::Json(e.detail_json),
            },
        )
    }

    fn check(
        &mut self,
        seq: i64,
        prev_hash: &str,
        hash: &str,
        c: &Canonical<'_>,
    ) -> Result<(), ChainBreak> {
        self.links(seq, prev_hash)?;
        if !hash_matches(prev_hash, hash, c) {
            return Err(altered(seq));
        }
        self.advance(hash);
        Ok(())
    }

    /// The link half of a check, for verifiers that hash many entries at once: `seq` is
    /// the next one and `prev_hash` the hash before it; then the chain moves on to
    /// `hash`. Each entry's own hash is checked apart with [`StoredEntry::hash_matches`]
    /// (it needs only the entry's bytes and its recorded `prev_hash`).
    pub fn link(&mut self, seq: i64, prev_hash: &str, hash: &str) -> Result<(), ChainBreak> {
        self.links(seq, prev_hash)?;
        self.advance(hash);
        Ok(())
    }

    fn advance(&mut self, hash: &str) {
        self.expected_seq += 1;
        self.prev_hash.clear();
        self.prev_hash.push_str(hash);
    }

    fn links(&self, seq: i64, prev_hash: &str) -> Result<(), ChainBreak> {
        if seq != self.expected_seq {
            return Err(ChainBreak {
                seq: self.expected_seq,
                problem: if seq > self.expected_seq {
                    format!("missing: the next entry found is #{seq} (removed rows?)")
                } else {
                    format!(
                        "out of order: #{seq} found where #{} belongs",
                        self.expected_seq
                    )
                },
            });
        }
        if prev_hash != self.prev_hash {
            return Err(ChainBreak {
                seq,
                problem: "does not link to the entry before it (removed or reordered rows?)".into(),
            });
        }
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

    /// What every earlier version hashed: serde_json's compact serialisation.
    fn serde_canonical(seq: i64, prev: &str, e: &NewAuditEntry) -> Vec<u8> {
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
        let mut out = format!("{prev}\n").into_bytes();
        out.extend(
            serde_json::to_vec(&Canonical {
                seq,
                ts: e.ts,
                actor: &e.actor,
                surface: e.surface,
                event: &e.event,
                action_id: e.action_id.as_deref(),
                outcome: &e.outcome,
                detail: &e.detail,
            })
            .unwrap(),
        );
        out
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".*".prop_map(Value::String),
            "[\\x00-\\x1f\"\\\\\u{7f}é€😀a]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn canonical_bytes_are_serde_json_byte_for_byte(
            seq in proptest::prelude::any::<i64>(),
            ts in proptest::prelude::any::<i64>(),
            actor in ".*",
            event in "[\\x00-\\x7f]{0,20}",
            action_id in proptest::option::of(".*"),
            surface in proptest::option::of(proptest::sample::select(vec![
                Surface::ActionCenter, Surface::Chat, Surface::Mcp, Surface::Batch, Surface::Cli,
            ])),
            detail in arb_json(),
        ) {
            let e = NewAuditEntry {
                ts, actor, surface, event, action_id, outcome: "ok".into(), detail,
            };
            let ours = canonical_bytes(seq, GENESIS, &e);
            proptest::prop_assert_eq!(&ours, &serde_canonical(seq, GENESIS, &e));
            // A stored row (detail kept as its JSON text) hashes the same.
            let sealed = seal(seq, GENESIS, e);
            let text = sealed.detail.to_string();
            let stored = StoredEntry {
                seq: 1, ts: sealed.ts, actor: &sealed.actor, surface: sealed.surface,
                event: &sealed.event, action_id: sealed.action_id.as_deref(),
                outcome: &sealed.outcome, detail_json: &text, prev_hash: GENESIS, hash: &sealed.hash,
            };
            if seq == 1 {
                proptest::prop_assert!(ChainVerifier::default().push_stored(&stored).is_ok());
            }
            let resealed = seal(1, GENESIS, sealed.unsealed());
            let stored = StoredEntry { hash: &resealed.hash, ..stored };
            proptest::prop_assert!(ChainVerifier::default().push_stored(&stored).is_ok());
        }
    }

    #[test]
    fn a_stored_row_whose_detail_text_was_edited_is_caught() {
        let c = chain(3);
        let texts: Vec<String> = c.iter().map(|e| e.detail.to_string()).collect();
        let stored = |i: usize, detail: &'static str| {
            let e = &c[i];
            let json: &str = if detail.is_empty() { &texts[i] } else { detail };
            (e, json)
        };
        let mut v = ChainVerifier::default();
        for i in 0..3 {
            let (e, json) = stored(i, if i == 1 { "{\"a\":[1,2],\"z\":2}" } else { "" });
            let r = v.push_stored(&StoredEntry {
                seq: e.seq,
                ts: e.ts,
                actor: &e.actor,
                surface: e.surface,
                event: &e.event,
                action_id: e.action_id.as_deref(),
                outcome: &e.outcome,
                detail_json: json,
                prev_hash: &e.prev_hash,
                hash: &e.hash,
            });
            if i == 1 {
                assert_eq!(r.unwrap_err().seq, 2);
                return;
            }
            r.unwrap();
        }
        unreachable!();
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
