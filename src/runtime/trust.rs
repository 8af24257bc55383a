//! Trust calibration over the store: the audit log replayed into approval figures per
//! kind and confidence band, nudges and rule hits. Shared by `dealflow policy` and the
//! TUI, so both suggest exactly the same rules.

use crate::core::audit::AuditEntry;
use crate::core::calibration::{Calibration, CalibrationConfig};
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

/// The calibration replayed from the audit log, with the permissions it was judged
/// against (their step-up threshold bounds what may ever be suggested).
pub fn replay(store: &dyn Store) -> Result<(Calibration, Permissions), StoreError> {
    let perms = store.load_permissions()?;
    let cfg = CalibrationConfig {
        step_up_amount_cents: perms.step_up_amount_cents,
        ..CalibrationConfig::default()
    };
    Ok((Calibration::replay(cfg, &audit_log(store)?), perms))
}
