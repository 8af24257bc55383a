//! Trust calibration over the store: the audit log replayed into approval figures per
//! kind and confidence band, nudges and rule hits. Shared by `dealflow policy` and the
//! TUI, so both suggest exactly the same rules.

use crate::core::audit::AuditEntry;
use crate::core::calibration::{Calibration, CalibrationConfig, Observer};
use crate::core::domain::Cents;
use crate::core::permissions::Permissions;
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
    /// The last audit seq fed.
    after: i64,
    threshold: Cents,
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
            threshold,
        }
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
