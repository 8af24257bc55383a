//! Trust calibration over the store: the audit log replayed into approval figures per
//! kind and confidence band, nudges and rule hits. Shared by `dealflow policy` and the
//! TUI, so both suggest exactly the same rules.

use crate::core::audit::AuditEntry;
use crate::core::calibration::{Calibration, CalibrationConfig, CalibrationState, Observer};
use crate::core::domain::Cents;
use crate::core::permissions::Permissions;
use crate::runtime::seal::ConsentKey;
use crate::store::{Store, StoreError};

/// How long a rule accepted from a nudge lives unless the person says otherwise.
pub const DEFAULT_RULE_DAYS: i64 = 30;

/// The whole audit log, oldest first, read in pages.
pub fn audit_log(store: &dyn Store) -> Result<Vec<AuditEntry>, StoreError> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_page(after, 5000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        out.extend(page);
    }
    Ok(out)
}

/// Calibration kept current by feeding it only the audit entries after the last one it
/// saw, a page at a time: memory is one page plus what it remembers per action, and a
/// refresh costs what was appended since, not the whole log.
#[derive(Debug, Clone)]
pub struct Replay {
    observer: Observer,
    calibration: Calibration,
    /// The last audit seq fed, and its hash (what a snapshot says it covers).
    after: i64,
    after_hash: String,
    threshold: Cents,
    /// Entries fed since the snapshot was last saved.
    unsaved: usize,
    /// The seq it started after: 0, or what the snapshot it was read from covered.
    started_after: i64,
}

/// The store cache the calibration snapshot lives in.
pub const SNAPSHOT: &str = "calibration";
/// A snapshot is saved once this many entries were fed since the last (and after a
/// replay from the first entry).
const SAVE_EVERY: usize = 1000;

/// What the snapshot holds: the replay's whole state and the chain position it covers.
#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    seq: i64,
    hash: String,
    threshold: Cents,
    observer: Observer,
    calibration: CalibrationState,
}

impl Replay {
    fn new(threshold: Cents) -> Replay {
        Replay {
            observer: Observer::default(),
            calibration: Calibration::new(CalibrationConfig {
                step_up_amount_cents: threshold,
                ..CalibrationConfig::default()
            }),
            after: 0,
            after_hash: crate::core::audit::GENESIS.to_string(),
            threshold,
            unsaved: 0,
            started_after: 0,
        }
    }

    /// The replay the store's snapshot holds, if it is one `key` made, for this
    /// threshold, and still covers an entry of the chain as it is (its seq and hash).
    /// Anything else (no key, no snapshot, forged, stale, or a chain rewritten under
    /// it) is `None`, and the caller replays from the first entry: a cache, not a fact.
    fn from_snapshot(
        store: &dyn Store,
        key: &ConsentKey,
        threshold: Cents,
    ) -> Result<Option<Replay>, StoreError> {
        let Some(body) = store.load_cache(SNAPSHOT)? else {
            return Ok(None);
        };
        let Some((tag, json)) = body.split_once('\n') else {
            return Ok(None);
        };
        if !key.verify_cache(SNAPSHOT, json.as_bytes(), tag) {
            return Ok(None);
        }
        let Ok(s) = serde_json::from_str::<Snapshot>(json) else {
            return Ok(None);
        };
        let covered = store.audit_page(s.seq - 1, 1)?;
        if s.threshold != threshold
            || covered
                .first()
                .is_none_or(|e| e.seq != s.seq || e.hash != s.hash)
        {
            return Ok(None);
        }
        let Some(calibration) = Calibration::from_state(s.calibration) else {
            return Ok(None);
        };
        Ok(Some(Replay {
            observer: s.observer,
            calibration,
            after: s.seq,
            after_hash: s.hash,
            threshold,
            unsaved: 0,
            started_after: s.seq,
        }))
    }

    /// Saves the state as the store's snapshot, MACed with `key`.
    fn save(&mut self, store: &dyn Store, key: &ConsentKey) -> Result<(), StoreError> {
        let json = serde_json::to_string(&Snapshot {
            seq: self.after,
            hash: self.after_hash.clone(),
            threshold: self.threshold,
            observer: self.observer.clone(),
            calibration: self.calibration.state(),
        })
        .unwrap_or_default();
        let tag = key.mac_cache(SNAPSHOT, json.as_bytes());
        store.save_cache(SNAPSHOT, &format!("{tag}\n{json}"))?;
        self.unsaved = 0;
        Ok(())
    }

    /// As [`Replay::catch_up`], starting (when the slot is empty) from the store's
    /// snapshot if `key` made it and it still matches the chain, and saving one now
    /// and then: start-up reads the snapshot and the tail, not the log (issue 18).
    pub fn catch_up_cached<'a>(
        slot: &'a mut Option<Replay>,
        store: &dyn Store,
        perms: &Permissions,
        key: Option<&ConsentKey>,
    ) -> Result<&'a Replay, StoreError> {
        let threshold = perms.step_up_amount_cents;
        if slot.as_ref().is_some_and(|r| r.threshold != threshold) {
            *slot = None;
        }
        if slot.is_none()
            && let Some(k) = key
        {
            *slot = Replay::from_snapshot(store, k, threshold)?;
        }
        let r = slot.get_or_insert_with(|| Replay::new(threshold));
        let from_scratch = r.after == 0;
        r.feed(store)?;
        if let Some(k) = key
            && r.unsaved > 0
            && (from_scratch || r.unsaved >= SAVE_EVERY)
        {
            r.save(store, k)?;
        }
        Ok(r)
    }

    /// Feeds what was appended since the last call. A changed step-up threshold (it
    /// decides which streaks may ever become a nudge) starts over from the first entry.
    pub fn catch_up<'a>(
        slot: &'a mut Option<Replay>,
        store: &dyn Store,
        perms: &Permissions,
    ) -> Result<&'a Replay, StoreError> {
        if slot
            .as_ref()
            .is_some_and(|r| r.threshold != perms.step_up_amount_cents)
        {
            *slot = None;
        }
        let r = slot.get_or_insert_with(|| Replay::new(perms.step_up_amount_cents));
        r.feed(store)?;
        Ok(r)
    }

    fn feed(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        loop {
            let page = store.audit_page(self.after, 5000)?;
            let Some(last) = page.last() else { break };
            self.after = last.seq;
            self.after_hash = last.hash.clone();
            self.unsaved += page.len();
            for e in &page {
                if let Some(o) = self.observer.observe(e) {
                    self.calibration.observe(&o);
                }
            }
        }
        Ok(())
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// The seq it started after: what the snapshot it was read from covered, or 0 when
    /// it replayed from the first entry.
    pub fn started_after(&self) -> i64 {
        self.started_after
    }

    /// The last audit seq it has seen.
    pub fn head(&self) -> i64 {
        self.after
    }
}

/// The calibration replayed from the whole audit log, with the permissions it was judged
/// against (their step-up threshold bounds what may ever be suggested).
pub fn replay(store: &dyn Store) -> Result<(Calibration, Permissions), StoreError> {
    let perms = store.load_permissions()?;
    let mut r = Replay::new(perms.step_up_amount_cents);
    r.feed(store)?;
    Ok((r.calibration, perms))
}
