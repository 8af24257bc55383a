//! Watching the store for changes (its change marker, or a fingerprint where it has
//! none) so the engine runs again when something moved.

use super::{Run, SuggestError, Suggester};
use crate::core::domain::Millis;
use std::sync::Arc;

/// How often the engine reads the store's change marker: next to free, and the bound
/// on how long a change committed elsewhere waits before the engine looks at it.
pub const CHANGE_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// How often a store without a change marker is fingerprinted.
pub const FINGERPRINT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// What a change in the pipeline looks like from the outside: deals (stage, amount, last
/// touch) and contacts. When it moves, the engine looks again.
pub(super) fn fingerprint(store: &dyn crate::store::Store) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for d in store.list_deals().ok()? {
        (d.id, d.stage.as_str(), d.amount_cents, d.last_touch).hash(&mut h);
    }
    store.list_contacts().ok()?.len().hash(&mut h);
    Some(h.finish())
}

impl Suggester {
    /// Runs at start, every `every`, and whenever the pipeline changes, until `cancel`
    /// fires. Each run's outcome goes to `report`. `now` is the clock. Every `poll` it
    /// reads the store's change marker (next to free) and fingerprints the pipeline only
    /// when that moved, so a change another process commits is noticed within `poll`;
    /// a store without a marker is fingerprinted every [`FINGERPRINT_EVERY`].
    pub async fn watch(
        self: Arc<Self>,
        every: std::time::Duration,
        poll: std::time::Duration,
        now: Arc<dyn Fn() -> Millis + Send + Sync>,
        report: Arc<dyn Fn(Result<Run, SuggestError>) + Send + Sync>,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        let mut seen = None;
        let mut marker_seen: Option<u64> = None;
        let mut last_fp: Option<tokio::time::Instant> = None;
        let mut last_run: Option<tokio::time::Instant> = None;
        loop {
            let store = self.pipeline.store.clone();
            let stale = last_fp.is_none_or(|t| t.elapsed() >= FINGERPRINT_EVERY);
            let (marker, fp) = tokio::task::spawn_blocking(move || {
                let marker = store.change_marker();
                let look = match marker {
                    Some(m) => Some(m) != marker_seen,
                    None => stale,
                };
                (marker, look.then(|| fingerprint(store.as_ref())).flatten())
            })
            .await
            .unwrap_or((None, None));
            if fp.is_some() {
                last_fp = Some(tokio::time::Instant::now());
            }
            marker_seen = marker;
            let due = last_run.is_none_or(|t| t.elapsed() >= every);
            let changed = fp.is_some() && fp != seen;
            if let Some(f) = fp {
                seen = Some(f);
            }
            if due || changed {
                last_run = Some(tokio::time::Instant::now());
                let outcome = self.run_until(now(), &cancel).await;
                if matches!(outcome, Err(SuggestError::Stopped)) {
                    return;
                }
                if !matches!(outcome, Err(SuggestError::Busy)) {
                    // A spent budget is said once per run attempt, not every poll.
                    report(outcome);
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}
