//! Persistence behind one [`Store`] trait: deals, contacts, actions with compare-and-set
//! state transitions, permissions, and the hash-chained audit log.

pub mod anchored;
pub mod redis;
pub mod sqlite;

pub use anchored::{Anchored, AuditAnchor};

use crate::core::audit::{AuditEntry, ChainBreak, ChainVerifier, NewAuditEntry};
use crate::core::consent::Recorded;
use crate::core::domain::{Action, ActionParams, ActionState, Contact, Deal, Millis};
use crate::core::permissions::{PermissionChange, Permissions};

pub use self::redis::RedisStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("action {id} not found")]
    NotFound { id: String },
    /// Someone else moved the action first: the caller lost the race and must not act.
    #[error(
        "action {id} changed underneath: expected {expected} (v{version}), found {found} (v{found_version})"
    )]
    Conflict {
        id: String,
        expected: ActionState,
        version: i64,
        found: ActionState,
        found_version: i64,
    },
    #[error("action {id} cannot go from {from} to {to}")]
    InvalidTransition {
        id: String,
        from: ActionState,
        to: ActionState,
    },
    #[error("action {id} cannot be edited while {state}")]
    NotEditable { id: String, state: ActionState },
    #[error("invalid permission change: {0}")]
    Permission(String),
    #[error("store {path}: {message}")]
    Db { path: String, message: String },
    #[error("store {path}: corrupt row: {message}")]
    Corrupt { path: String, message: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The evidence a permission change's audit entry carries, the same in every backend:
/// the change, its one-line summary, and the permission set before it.
pub(crate) fn permission_change_detail(
    detail: &mut serde_json::Value,
    change: &PermissionChange,
    summary: &str,
    before: &Permissions,
) {
    let change = serde_json::to_value(change).unwrap_or_default();
    let before = serde_json::to_value(before).unwrap_or_default();
    match detail {
        serde_json::Value::Object(m) => {
            m.insert("change".into(), change);
            m.insert("summary".into(), summary.into());
            m.insert("before".into(), before);
        }
        other => {
            *other = serde_json::json!({ "change": change, "summary": summary, "before": before });
        }
    }
}

/// A named lease: one worker at a time (the suggestion engine, the batch gatherer) for
/// everyone sharing the store, across processes and machines. A lease ends when its
/// holder releases it or at `until`, so a crashed holder blocks no one for long.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lease {
    pub name: String,
    /// Who holds it: "pid 4242 on host (tui)", never a secret.
    pub holder: String,
    pub until: Millis,
}

/// The leases dealflow takes (names in the store).
pub mod lease {
    /// A suggestion run.
    pub const SUGGEST: &str = "suggest";
    /// Gathering the device queue into one CIBA push.
    pub const BATCH: &str = "batch";
    /// The background worker (`dealflow service run`): one per user.
    pub const SERVICE: &str = "service";
    pub const ALL: [&str; 3] = [SUGGEST, BATCH, SERVICE];
}

/// Which actions to list.
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub states: Vec<ActionState>,
    pub limit: Option<usize>,
}

/// One keyset page of actions (issue 18): most recently changed first, by
/// `(updated_at, id)`, starting strictly below `before`. A reader that holds every
/// pending action but only a window of finished ones asks for the next window from the
/// oldest it holds, so a long history costs a page, not the whole table. Finished
/// actions never change again, so in this order new ones only ever arrive on top: a
/// window stays contiguous however long it is held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionPage {
    /// Only actions in these states (empty: every state).
    pub states: Vec<ActionState>,
    /// Only actions changed before this `(updated_at, id)` (`None`: from the newest).
    pub before: Option<(Millis, String)>,
    pub limit: usize,
}

impl ActionPage {
    /// Whether `a` is one this page selects (state and bound; not the limit).
    pub fn selects(&self, a: &Action) -> bool {
        (self.states.is_empty() || self.states.contains(&a.state))
            && self
                .before
                .as_ref()
                .is_none_or(|(at, id)| (a.updated_at, a.id.as_str()) < (*at, id.as_str()))
    }
}

/// One keyset page of the audit log (issue 18): a reader that holds only what is on
/// screen asks for the next page from the seq it stopped at, in either direction, with
/// the kind filter applied by the store (an index in SQLite, a server-side walk in
/// Redis) rather than over a log loaded whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries with `seq < before` (`None`: up to the head).
    pub before: Option<i64>,
    /// Only entries with `seq > after` (0: from the first).
    pub after: i64,
    /// Newest first, walking down from `before`; else oldest first, up from `after`.
    pub newest_first: bool,
    /// Only entries whose `detail.kind` is one of these (empty: every entry).
    pub kinds: Vec<String>,
    pub limit: usize,
}

impl AuditQuery {
    /// Whether `e` is one this query selects (bounds and kinds; not the limit).
    pub fn selects(&self, e: &AuditEntry) -> bool {
        e.seq > self.after
            && self.before.is_none_or(|b| e.seq < b)
            && (self.kinds.is_empty()
                || e.detail
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .is_some_and(|k| self.kinds.iter().any(|w| w == k)))
    }
}

/// A request to move an action from a known state and version to another.
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: ActionState,
    pub version: i64,
    pub to: ActionState,
    pub outcome: Option<String>,
    /// Recorded with an approval; cleared when the action goes back to `proposed`.
    pub evidence: Option<Recorded>,
    pub at: Millis,
}

pub trait Store: Send + Sync {
    /// Human-readable location, for `doctor` and the status bar.
    fn describe(&self) -> String;

    /// A number that moves whenever anything is committed, by this process or another,
    /// and costs next to nothing to read: watchers poll it often and look closer only
    /// when it moved. `None`: the store cannot tell cheaply (poll what you need).
    fn change_marker(&self) -> Option<u64> {
        None
    }

    fn upsert_deal(&self, deal: &Deal) -> Result<()>;
    fn list_deals(&self) -> Result<Vec<Deal>>;
    fn get_deal(&self, id: &str) -> Result<Option<Deal>>;

    fn upsert_contact(&self, contact: &Contact) -> Result<()>;
    fn list_contacts(&self) -> Result<Vec<Contact>>;
    /// Writes many deals and contacts as one unit, all or nothing (one SQLite
    /// transaction, one Redis MULTI/EXEC): a 10,000-row import is one commit, not 10,000.
    /// This default, for stores that cannot batch, writes them one at a time.
    fn upsert_many(&self, deals: &[Deal], contacts: &[Contact]) -> Result<()> {
        for d in deals {
            self.upsert_deal(d)?;
        }
        for c in contacts {
            self.upsert_contact(c)?;
        }
        Ok(())
    }

    fn insert_action(&self, action: &Action) -> Result<()>;
    fn get_action(&self, id: &str) -> Result<Action>;
    /// Newest first.
    fn list_actions(&self, filter: &ActionFilter) -> Result<Vec<Action>>;
    /// The page `q` selects, most recently changed first. Backends answer from an index
    /// on (state, updated_at); this default lists every action in those states.
    fn action_page(&self, q: &ActionPage) -> Result<Vec<Action>> {
        let mut out = self.list_actions(&ActionFilter {
            states: q.states.clone(),
            limit: None,
        })?;
        out.retain(|a| q.selects(a));
        out.sort_by(|a, b| (b.updated_at, &b.id).cmp(&(a.updated_at, &a.id)));
        out.truncate(q.limit);
        Ok(out)
    }
    /// How many actions are in `states` (empty: all), without loading them where the
    /// backend can count (SQLite); this default lists them.
    fn count_actions(&self, states: &[ActionState]) -> Result<usize> {
        Ok(self
            .list_actions(&ActionFilter {
                states: states.to_vec(),
                limit: None,
            })?
            .len())
    }
    /// Compare-and-set: succeeds only if the action is still in `t.from` at `t.version`.
    /// Exactly one of several racing callers (threads or processes) wins.
    fn transition(&self, id: &str, t: &Transition) -> Result<Action>;
    /// Replaces the payload of a proposed (or awaiting-consent) action, voiding any
    /// consent or pending device request: the action goes back to `proposed`.
    fn edit_action(
        &self,
        id: &str,
        version: i64,
        params: &ActionParams,
        at: Millis,
    ) -> Result<Action>;
    /// Start-up sweep: every action left `executing` by a crash becomes
    /// `needs_reconciliation`. Returns them.
    fn mark_interrupted(&self, at: Millis) -> Result<Vec<Action>> {
        let stuck = self.list_actions(&ActionFilter {
            states: vec![ActionState::Executing],
            limit: None,
        })?;
        let mut out = Vec::new();
        for a in stuck {
            let t = Transition {
                from: ActionState::Executing,
                version: a.version,
                to: ActionState::NeedsReconciliation,
                outcome: Some(
                    "interrupted while executing: check the provider before retrying".into(),
                ),
                evidence: None,
                at,
            };
            match self.transition(&a.id, &t) {
                Ok(now) => out.push(now),
                // It finished (or was swept) in another process meanwhile: not ours.
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Takes lease `name` for `holder` until `until`, if it is free, expired at `now`, or
    /// already `holder`'s (which extends it). `Ok(Err(lease))`: someone else holds it.
    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<std::result::Result<(), Lease>>;
    /// Gives lease `name` back, if `holder` still holds it.
    fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
    /// The leases held at `now`, for `doctor`.
    fn leases(&self, now: Millis) -> Result<Vec<Lease>>;

    fn load_permissions(&self) -> Result<Permissions>;
    /// Applies a user's change and audits it in one transaction.
    fn change_permissions(
        &self,
        change: &PermissionChange,
        audit: NewAuditEntry,
    ) -> Result<(Permissions, AuditEntry)>;

    /// Appends atomically; concurrent appenders never fork the chain.
    fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry>;
    /// Appends to the team's hash-chained stream, when this store belongs to a team
    /// (a push to the team lead and the lead's answer); `None` when it has no team.
    fn append_team_audit(&self, entry: NewAuditEntry) -> Result<Option<AuditEntry>> {
        let _ = entry;
        Ok(None)
    }
    /// Entries with `seq > after`, in order, at most `limit`.
    fn audit_page(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>>;
    /// The page `q` selects, in its walk order (newest first or oldest first). Backends
    /// answer by seq range (and an index on the kind); this default reads from
    /// `q.after` up, page by page, keeping the last `limit` when walking newest first.
    fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut out = std::collections::VecDeque::new();
        let mut after = q.after;
        'pages: loop {
            let page = self.audit_page(after, 5000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in page {
                if q.before.is_some_and(|b| e.seq >= b) {
                    break 'pages;
                }
                if q.selects(&e) {
                    out.push_back(e);
                    if out.len() > q.limit {
                        if !q.newest_first {
                            out.pop_back();
                            break 'pages;
                        }
                        out.pop_front();
                    }
                }
            }
        }
        let mut out: Vec<AuditEntry> = out.into();
        if q.newest_first {
            out.reverse();
        }
        Ok(out)
    }
    /// A cache kept for a reader under `name` (the calibration snapshot), `None` when
    /// there is none. A cache is not a fact: its reader checks it against the audit
    /// chain (and its own MAC) before trusting it. This default keeps nothing.
    fn load_cache(&self, name: &str) -> Result<Option<String>> {
        let _ = name;
        Ok(None)
    }
    /// Replaces the cache under `name`.
    fn save_cache(&self, name: &str, body: &str) -> Result<()> {
        let _ = (name, body);
        Ok(())
    }
    /// (entry count, head hash) as recorded at the last append.
    fn audit_head(&self) -> Result<(i64, String)>;

    /// Entries about `action_id` stamped at or after `since`, newest first. Backends
    /// answer from an index (SQLite) or by reading back from the head (Redis) only as far
    /// as `since`; this default reads the whole log.
    fn audit_about(&self, action_id: &str, since: Millis) -> Result<Vec<AuditEntry>> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.audit_page(after, 5000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            out.extend(
                page.into_iter()
                    .filter(|e| e.action_id.as_deref() == Some(action_id) && e.ts >= since),
            );
        }
        out.reverse();
        Ok(out)
    }

    /// Entries whose event is `event`, stamped at or after `since`, newest first: what a
    /// count over a window needs (the blast-radius budgets read one day of approvals on
    /// every decision). Backends answer from an index on (event, ts) (SQLite) or by
    /// reading back from the head only as far as `since` (Redis); this default reads the
    /// whole log.
    fn audit_events_since(&self, event: &str, since: Millis) -> Result<Vec<AuditEntry>> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.audit_page(after, 5000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            out.extend(
                page.into_iter()
                    .filter(|e| e.event == event && e.ts >= since),
            );
        }
        out.reverse();
        Ok(out)
    }

    /// Walks the whole chain; `Ok(n)` means n entries verified.
    fn verify_audit(&self) -> Result<std::result::Result<i64, ChainBreak>> {
        self.verify_audit_progress(&|_| {})
    }

    /// As [`Store::verify_audit`], telling `progress` how many entries are checked so
    /// far after each stretch (a long run on a terminal shows a bar). This default
    /// streams pages of 5,000.
    fn verify_audit_progress(
        &self,
        progress: &dyn Fn(i64),
    ) -> Result<std::result::Result<i64, ChainBreak>> {
        verify_by_pages(self, progress)
    }
}

/// [`Store::verify_audit_progress`]'s default: the chain walked a page at a time, then
/// held against the recorded head.
pub(crate) fn verify_by_pages<S: Store + ?Sized>(
    store: &S,
    progress: &dyn Fn(i64),
) -> Result<std::result::Result<i64, ChainBreak>> {
    let mut v = ChainVerifier::default();
    let mut after = 0;
    loop {
        let page = store.audit_page(after, 5000)?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            if let Err(b) = v.push(e) {
                return Ok(Err(b));
            }
        }
        after = page.last().map_or(after, |e| e.seq);
        progress(v.count());
    }
    let (count, head) = store.audit_head()?;
    Ok(v.finish(count, &head))
}
