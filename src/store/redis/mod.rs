//! The Redis store, for a team or a shared box. Every key lives under a per-user
//! namespace (`dealflow:u:{<sub>}:`, the verified Auth0 `sub`), team policies under
//! `dealflow:t:{<team>}:policy`.
//!
//! Layout (per user):
//! - `deals`, `contacts`: hashes id → JSON.
//! - `actions`: set of ids; `action:<id>`: hash with `state`, `version`, `updated_at`,
//!   `outcome`, `evidence`, `params` and `body` (the rest of the action as JSON).
//! - `permissions`: string (JSON).
//! - `audit:log`: stream, one entry per sealed audit entry, ID `<seq>-0`, field `entry`
//!   (the JSON). Before, `audit` (a sorted set scored by seq) and `audit:head` (hash
//!   {count, hash}); opening a store moves such a log into the stream once.
//! - `cache:<name>`: string, a reader's cache (the calibration snapshot).
//!
//! Atomicity: transitions and edits are Lua scripts that compare state and version and
//! bump the version. An audit append seals the entry in Rust from the head it read, then
//! `XADD`s it with the next seq as its ID, which Redis refuses if that ID is taken
//! (compare-and-append in one native command), retrying otherwise; a permission change
//! does the same in a script with the permissions body included, so the change and its
//! audit entry land together or not at all.
//!
//! The trait is synchronous and is called from `spawn_blocking`: this uses the redis
//! crate's blocking connection behind a mutex (no runtime involved), reconnecting after
//! a connection error.

use super::{ActionFilter, ActionPage, AuditQuery, Lease, Result, Store, StoreError, Transition};
use crate::core::audit::{self, AuditEntry, NewAuditEntry};
use crate::core::domain::{Action, ActionParams, ActionState, Contact, Deal, Millis};
use crate::core::permissions::{PermissionChange, Permissions};
use redis::{Connection, Script};

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

mod acl;
mod actions;
mod audit_log;
mod connect;
mod namespace;
mod scripts;
mod stream;
mod team;

pub use acl::{AclReport, Credential, member_rules, member_user};
use audit_log::MAX_ATTEMPTS;
pub use connect::Connect;
pub use namespace::{Adoption, Health};
use scripts::{APPEND, EDIT, INSERT, MIGRATE, TRANSITION};
pub use team::PolicyOp;

pub struct RedisStore {
    url: String,
    namespace: String,
    team: Option<String>,
    client: redis::Client,
    conn: Mutex<Option<Connection>>,
    transition: Script,
    edit: Script,
    insert: Script,
    append: Script,
    /// The audit head as last seen (count, hash): an append seals against it and the
    /// script's compare-and-set checks it, so an append is one round trip; a stale
    /// head costs one more (the script answers the current one).
    audit_head: Mutex<Option<(i64, String)>>,
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `url` as it may be shown: never the credentials that may be in it.
pub fn shown_url(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((scheme_user, host)) => {
            let scheme = scheme_user.split("://").next().unwrap_or("redis");
            format!("{scheme}://…@{host}")
        }
        None => url.to_string(),
    }
}

/// Whether Redis refused a command for the connection's ACL user (NOPERM).
pub fn refused_by_acl(e: &StoreError) -> bool {
    let text = e.to_string();
    text.contains("NOPERM") || text.contains("NoPerm")
}

/// Keeps a namespace to characters that cannot break out of the key prefix.
fn clean_namespace(ns: &str) -> std::result::Result<String, String> {
    if ns.is_empty() {
        return Err("the namespace (user) must not be empty".into());
    }
    if ns.contains(['*', '?', '[', ']', '\\', '{', '}']) || ns.contains(char::is_whitespace) {
        return Err(format!(
            "namespace {ns:?} must not contain glob characters, braces or whitespace"
        ));
    }
    Ok(ns.to_string())
}

impl RedisStore {
    /// Connects to `url` (redis:// or rediss://) for the user `namespace` (the verified
    /// Auth0 `sub`), optionally under `team`, as the URL's user (or the default one).
    pub fn open(url: &str, namespace: &str, team: Option<&str>) -> Result<RedisStore> {
        Self::open_with(url, &Connect::default(), namespace, team)
    }

    /// [`Self::open`] with a credential (an ACL user: a member's, or the Redis admin's)
    /// and TLS settings.
    pub fn open_with(
        url: &str,
        connect: &Connect,
        namespace: &str,
        team: Option<&str>,
    ) -> Result<RedisStore> {
        let db = |message: String| StoreError::Db {
            path: shown_url(url),
            message,
        };
        let namespace = clean_namespace(namespace).map_err(db)?;
        let team = team.map(clean_namespace).transpose().map_err(db)?;
        let client = connect.client(url).map_err(db)?;
        let store = RedisStore {
            url: url.to_string(),
            namespace,
            team,
            client,
            conn: Mutex::new(None),
            transition: Script::new(TRANSITION),
            edit: Script::new(EDIT),
            insert: Script::new(INSERT),
            append: Script::new(APPEND),
            audit_head: Mutex::new(None),
        };
        // Fail at open, not at first use, when the server is not there; and move a log
        // kept in the old layout into the stream (one round trip when there is none).
        let prefix = Self::prefix_of(&store.namespace);
        store.migrate_log(&prefix)?;
        Ok(store)
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Whether the connection is TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        self.url.starts_with("rediss://")
    }

    /// The prefix of every key of namespace `ns`.
    pub fn prefix_of(ns: &str) -> String {
        // The braces delimit the namespace (which cannot contain them), so no user's
        // keys can alias another's ("a" + ":audit" vs "a:audit"), and they make the
        // namespace a Redis Cluster hash tag: one user's keys share a slot, as the
        // multi-key Lua scripts need.
        format!("dealflow:u:{{{ns}}}:")
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", Self::prefix_of(&self.namespace))
    }

    /// Moves the audit log under `prefix` from the old layout (a sorted set and its
    /// recorded head) into the stream, once (`MIGRATE`; one round trip when there is
    /// nothing to move). A credential that cannot reach `prefix` moves nothing: its own
    /// reads will say so.
    fn migrate_log(&self, prefix: &str) -> Result<()> {
        let moved = self.with(|c| {
            Script::new(MIGRATE)
                .key(format!("{prefix}audit"))
                .key(format!("{prefix}audit:head"))
                .key(format!("{prefix}{}", audit_log::LOG))
                .key(format!("{prefix}audit:orphaned"))
                .invoke::<i64>(c)
        });
        match moved {
            Ok(n) if n > 0 => {
                tracing::info!("moved {n} audit entries of {prefix} into the audit stream");
                Ok(())
            }
            Ok(-1) => {
                tracing::warn!(
                    "{prefix}: an older dealflow wrote audit entries in the old layout after the log became a stream; they were set aside in {prefix}audit:orphaned (audit verify reports them)"
                );
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) if refused_by_acl(&e) => {
                self.with(|c| redis::cmd("PING").query::<String>(c))?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn team_key(&self, team: &str) -> String {
        Self::team_key_of(team, "policy")
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        let mut message = e.to_string();
        if message.starts_with("NoPerm") || message.starts_with("NOPERM") {
            // Redis's ACL said no: say whose keys this user may reach.
            message.push_str(
                " — your Redis user reaches only its own member's keys: are you signed in as the member whose credential `dealflow store credential` stored?",
            );
        }
        StoreError::Db {
            path: self.describe(),
            message,
        }
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: self.describe(),
            message: e.to_string(),
        }
    }

    /// Runs `f` on the connection, connecting first if needed. After an IO error the
    /// connection is dropped so the next call reconnects.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let c = self
                .client
                .get_connection_with_timeout(Duration::from_secs(5))
                .map_err(|e| self.err(e))?;
            c.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| self.err(e))?;
            c.set_write_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| self.err(e))?;
            *guard = Some(c);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(self.err("no connection"));
        };
        match f(conn) {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    *guard = None;
                }
                Err(self.err(e))
            }
        }
    }

    /// The team's policy, if this store has a team and the team has one.
    pub fn team_policy(&self) -> Result<Option<Permissions>> {
        let Some(team) = &self.team else {
            return Ok(None);
        };
        let key = self.team_key(team);
        let body: Option<String> = self.with(|c| redis::cmd("GET").arg(&key).query(c))?;
        body.map(|b| serde_json::from_str(&b))
            .transpose()
            .map_err(|e| self.corrupt(format!("team policy: {e}")))
    }

    /// The user's own permission set, before any team policy.
    pub fn own_permissions(&self) -> Result<Permissions> {
        Ok(self.own_permissions_raw()?.1)
    }

    fn own_permissions_raw(&self) -> Result<(Option<String>, Permissions)> {
        let key = self.key("permissions");
        let body: Option<String> = self.with(|c| redis::cmd("GET").arg(&key).query(c))?;
        let perms = match &body {
            None => Permissions::default(),
            Some(b) => {
                serde_json::from_str(b).map_err(|e| self.corrupt(format!("permissions: {e}")))?
            }
        };
        Ok((body, perms))
    }

    fn effective(&self, own: Permissions) -> Result<Permissions> {
        Ok(match self.team_policy()? {
            Some(team) => own.tighten_with(&team),
            None => own,
        })
    }
}

impl Store for RedisStore {
    fn describe(&self) -> String {
        let team = self
            .team
            .as_ref()
            .map(|t| format!(" team {t}"))
            .unwrap_or_default();
        format!(
            "redis {} namespace {}{team}",
            shown_url(&self.url),
            self.namespace
        )
    }

    fn upsert_deal(&self, d: &Deal) -> Result<()> {
        let key = self.key("deals");
        self.with(|c| {
            redis::cmd("HSET")
                .arg(&key)
                .arg(&d.id)
                .arg(json(d))
                .query::<()>(c)
        })
    }

    fn list_deals(&self) -> Result<Vec<Deal>> {
        let key = self.key("deals");
        let m: BTreeMap<String, String> =
            self.with(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        let mut out = m
            .iter()
            .map(|(id, b)| {
                serde_json::from_str::<Deal>(b).map_err(|e| self.corrupt(format!("deal {id}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| b.amount_cents.cmp(&a.amount_cents).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    fn get_deal(&self, id: &str) -> Result<Option<Deal>> {
        let key = self.key("deals");
        let b: Option<String> = self.with(|c| redis::cmd("HGET").arg(&key).arg(id).query(c))?;
        b.map(|b| serde_json::from_str(&b))
            .transpose()
            .map_err(|e| self.corrupt(format!("deal {id}: {e}")))
    }

    fn upsert_contact(&self, ct: &Contact) -> Result<()> {
        let key = self.key("contacts");
        self.with(|c| {
            redis::cmd("HSET")
                .arg(&key)
                .arg(&ct.id)
                .arg(json(ct))
                .query::<()>(c)
        })
    }

    fn upsert_many(&self, deals: &[Deal], contacts: &[Contact]) -> Result<()> {
        if deals.is_empty() && contacts.is_empty() {
            return Ok(());
        }
        // One MULTI/EXEC: every field lands or none does, in one round trip.
        let mut pipe = redis::pipe();
        pipe.atomic();
        if !deals.is_empty() {
            let cmd = pipe.cmd("HSET").arg(self.key("deals"));
            for d in deals {
                cmd.arg(&d.id).arg(json(d));
            }
            pipe.ignore();
        }
        if !contacts.is_empty() {
            let cmd = pipe.cmd("HSET").arg(self.key("contacts"));
            for ct in contacts {
                cmd.arg(&ct.id).arg(json(ct));
            }
            pipe.ignore();
        }
        self.with(|c| pipe.query::<()>(c))
    }

    fn list_contacts(&self) -> Result<Vec<Contact>> {
        let key = self.key("contacts");
        let m: BTreeMap<String, String> =
            self.with(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        let mut out = m
            .iter()
            .map(|(id, b)| {
                serde_json::from_str::<Contact>(b)
                    .map_err(|e| self.corrupt(format!("contact {id}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn insert_action(&self, a: &Action) -> Result<()> {
        self.insert_action_hash(a)
    }

    fn get_action(&self, id: &str) -> Result<Action> {
        self.read_action_hash(id)
    }

    fn list_actions(&self, f: &ActionFilter) -> Result<Vec<Action>> {
        self.read_action_hashes(f)
    }

    fn action_page(&self, q: &ActionPage) -> Result<Vec<Action>> {
        self.read_action_page(q)
    }

    fn count_actions(&self, states: &[ActionState]) -> Result<usize> {
        self.count_action_hashes(states)
    }

    fn transition(&self, id: &str, t: &Transition) -> Result<Action> {
        self.transition_hash(id, t)
    }

    fn edit_action(&self, id: &str, version: i64, p: &ActionParams, at: i64) -> Result<Action> {
        self.edit_action_hash(id, version, p, at)
    }

    /// The effective set: the user's own, tightened by the team policy if there is one.
    fn load_permissions(&self) -> Result<Permissions> {
        let own = self.own_permissions()?;
        self.effective(own)
    }

    fn change_permissions(
        &self,
        change: &PermissionChange,
        audit: NewAuditEntry,
    ) -> Result<(Permissions, AuditEntry)> {
        for attempt in 0..MAX_ATTEMPTS {
            let (body, mut perms) = self.own_permissions_raw()?;
            let before = perms.clone();
            let summary = perms.apply(change).map_err(StoreError::Permission)?;
            let mut entry = audit.clone();
            super::permission_change_detail(&mut entry.detail, change, &summary, &before);
            let new_body = json(&perms);
            if let Some(sealed) = self.try_append(&entry, Some((&body, &new_body)))? {
                return Ok((self.effective(perms)?, sealed));
            }
            // The first retry goes at once: the script handed back the current head.
            if attempt > 0 {
                Self::backoff(attempt);
            }
        }
        Err(self.err("permission change: too much contention, gave up"))
    }

    fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry> {
        for attempt in 0..MAX_ATTEMPTS {
            if let Some(sealed) = self.try_append(&entry, None)? {
                return Ok(sealed);
            }
            if attempt > 0 {
                Self::backoff(attempt);
            }
        }
        Err(self.err("audit append: too much contention, gave up"))
    }

    fn append_team_audit(&self, entry: NewAuditEntry) -> Result<Option<AuditEntry>> {
        if self.team.is_none() {
            return Ok(None);
        }
        RedisStore::append_team_audit(self, entry).map(Some)
    }

    fn audit_page(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        self.read_audit_page(after, limit)
    }

    fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.query_audit_entries(q)
    }

    fn load_cache(&self, name: &str) -> Result<Option<String>> {
        let key = self.key(&format!("cache:{name}"));
        self.with(|c| redis::cmd("GET").arg(&key).query(c))
    }

    fn save_cache(&self, name: &str, body: &str) -> Result<()> {
        let key = self.key(&format!("cache:{name}"));
        self.with(|c| redis::cmd("SET").arg(&key).arg(body).query(c))
    }

    fn audit_about(&self, action_id: &str, since: Millis) -> Result<Vec<AuditEntry>> {
        self.read_back(since, |e| e.action_id.as_deref() == Some(action_id))
    }

    fn audit_events_since(&self, event: &str, since: Millis) -> Result<Vec<AuditEntry>> {
        self.read_back(since, |e| e.event == event)
    }

    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<std::result::Result<(), Lease>> {
        // Checked and set in one script, so two racing members cannot both take it.
        let script = redis::Script::new(
            r"local v = redis.call('HMGET', KEYS[1], 'holder', 'until')
              if v[1] and v[1] ~= ARGV[1] and tonumber(v[2]) > tonumber(ARGV[2]) then
                return {v[1], v[2]}
              end
              redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'until', ARGV[3])
              return {}",
        );
        let key = self.key(&format!("lease:{name}"));
        let held: Vec<String> =
            self.with(|c| script.key(&key).arg(holder).arg(now).arg(until).invoke(c))?;
        match held.as_slice() {
            [] => Ok(Ok(())),
            [h, u] => Ok(Err(Lease {
                name: name.to_string(),
                holder: h.clone(),
                until: u.parse().unwrap_or(i64::MAX),
            })),
            other => Err(self.corrupt(format!("lease {name}: unexpected reply {other:?}"))),
        }
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let script = redis::Script::new(
            r"if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then
                return redis.call('DEL', KEYS[1])
              end
              return 0",
        );
        let key = self.key(&format!("lease:{name}"));
        self.with(|c| script.key(&key).arg(holder).invoke::<i64>(c))
            .map(drop)
    }

    fn leases(&self, now: Millis) -> Result<Vec<Lease>> {
        let mut out = Vec::new();
        for name in super::lease::ALL {
            let key = self.key(&format!("lease:{name}"));
            let v: (Option<String>, Option<i64>) = self.with(|c| {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("holder")
                    .arg("until")
                    .query(c)
            })?;
            if let (Some(holder), Some(until)) = v
                && until > now
            {
                out.push(Lease {
                    name: name.to_string(),
                    holder,
                    until,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn audit_head(&self) -> Result<(i64, String)> {
        self.read_head()
    }

    /// The chain, then whatever an older dealflow wrote beside it: entries set aside when
    /// the log moved into the stream are outside the chain, and that is a break to see.
    fn verify_audit_progress(
        &self,
        progress: &dyn Fn(i64),
    ) -> Result<std::result::Result<i64, audit::ChainBreak>> {
        let walked = super::verify_by_pages(self, progress)?;
        let orphaned = self.key("audit:orphaned");
        let set_aside: bool = self.with(|c| redis::cmd("EXISTS").arg(&orphaned).query(c))?;
        Ok(match walked {
            Ok(n) if set_aside => Err(audit::ChainBreak {
                seq: n + 1,
                problem: format!(
                    "an older dealflow wrote audit entries in the old layout after this log became a stream; they were set aside in {orphaned}, outside the chain"
                ),
            }),
            other => other,
        })
    }
}
