//! The Redis store, for a team or a shared box. Every key lives under a per-user
//! namespace (`dealflow:u:{<sub>}:`, the verified Auth0 `sub`), team policies under
//! `dealflow:t:{<team>}:policy`.
//!
//! Layout (per user):
//! - `deals`, `contacts`: hashes id → JSON.
//! - `actions`: set of ids; `action:<id>`: hash with `state`, `version`, `updated_at`,
//!   `outcome`, `evidence`, `params` and `body` (the rest of the action as JSON).
//! - `permissions`: string (JSON).
//! - `audit`: sorted set scored by seq, members the sealed entries as JSON;
//!   `audit:head`: hash {count, hash}.
//! - `cache:<name>`: string, a reader's cache (the calibration snapshot).
//!
//! Atomicity: transitions and edits are Lua scripts that compare state and version and
//! bump the version. An audit append seals the entry in Rust from the head it read, then
//! a Lua script appends only if the head is still that one (compare-and-set), retrying
//! otherwise; a permission change does the same with the permissions body included, so
//! the change and its audit entry land together or not at all.
//!
//! The trait is synchronous and is called from `spawn_blocking`: this uses the redis
//! crate's blocking connection behind a mutex (no runtime involved), reconnecting after
//! a connection error.

use super::{ActionFilter, ActionPage, AuditQuery, Lease, Result, Store, StoreError, Transition};
use crate::core::audit::{self, AuditEntry, GENESIS, NewAuditEntry};
use crate::core::domain::{Action, ActionParams, ActionState, Contact, Deal, Millis};
use crate::core::permissions::{PermissionChange, Permissions};
use redis::{Connection, Script};

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "redis_acl.rs"]
mod acl;
#[path = "redis_team.rs"]
mod team;
pub use acl::{AclReport, Credential, member_rules, member_user};
pub use team::PolicyOp;

const TRANSITION: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'state', 'version')
if not cur[1] then return {'missing'} end
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then return {'conflict', cur[1], cur[2]} end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'version', tostring(tonumber(cur[2]) + 1), 'updated_at', ARGV[4])
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'outcome', ARGV[6]) end
if ARGV[7] == 'set' then redis.call('HSET', KEYS[1], 'evidence', ARGV[8])
elseif ARGV[7] == 'clear' then redis.call('HDEL', KEYS[1], 'evidence') end
return {'ok'}
"#;

const EDIT: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'state', 'version')
if not cur[1] then return {'missing'} end
local s = cur[1]
if cur[2] ~= ARGV[1] or (s ~= 'proposed' and s ~= 'awaiting_consent' and s ~= 'approved') then
  return {'conflict', cur[1], cur[2]}
end
redis.call('HSET', KEYS[1], 'params', ARGV[2], 'state', 'proposed', 'version', tostring(tonumber(cur[2]) + 1), 'updated_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'evidence')
return {'ok'}
"#;

const INSERT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'version', ARGV[2], 'updated_at', ARGV[3], 'params', ARGV[4], 'body', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'outcome', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'evidence', ARGV[7]) end
redis.call('SADD', KEYS[2], ARGV[8])
return 1
"#;

/// KEYS: audit, audit:head, permissions. ARGV: expected count, expected head hash, new
/// seq, entry JSON, new hash, the genesis hash, perms mode ('1' = also compare-and-set
/// the permissions), expected permissions body ('' = absent), new permissions body.
/// Answers {'ok'}, {'head', count, hash} (the head moved: here is the current one, so
/// the caller can reseal without another round trip) or {'perms'}.
const APPEND: &str = r#"
local head = redis.call('HMGET', KEYS[2], 'count', 'hash')
local count = head[1] or '0'
local hash = head[2] or ARGV[6]
if count ~= ARGV[1] or hash ~= ARGV[2] then return {'head', count, hash} end
if ARGV[7] == '1' then
  local body = redis.call('GET', KEYS[3]) or ''
  if body ~= ARGV[8] then return {'perms'} end
  redis.call('SET', KEYS[3], ARGV[9])
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[2], 'count', ARGV[3], 'hash', ARGV[5])
return {'ok'}
"#;

/// KEYS: audit. ARGV: the far bound, the near bound (ZRANGE BYSCORE syntax: `(12`,
/// `+inf`), '1' newest first, the limit, how many entries to read at most, then the
/// kinds. Walks the sorted set from the near bound a page at a time, keeping entries
/// whose `detail.kind` is one of the kinds, and stops at the limit or after reading the
/// budget (a long walk does not hold the server). Answers {'end' | 'more', the seq it
/// read up to, the entries...}.
const AUDIT_KINDS: &str = r#"
local want = {}
for i = 6, #ARGV do want[ARGV[i]] = true end
local far, near, rev = ARGV[1], ARGV[2], ARGV[3] == '1'
local limit, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {'more', ''}
local read = 0
while read < budget do
  local rows
  if rev then
    rows = redis.call('ZRANGE', KEYS[1], near, far, 'BYSCORE', 'REV', 'LIMIT', 0, 256, 'WITHSCORES')
  else
    rows = redis.call('ZRANGE', KEYS[1], near, far, 'BYSCORE', 'LIMIT', 0, 256, 'WITHSCORES')
  end
  if #rows == 0 then out[1] = 'end'; return out end
  for i = 1, #rows, 2 do
    read = read + 1
    near = '(' .. rows[i + 1]
    out[2] = rows[i + 1]
    local ok, e = pcall(cjson.decode, rows[i])
    if ok and type(e) == 'table' and type(e.detail) == 'table' and want[e.detail.kind] then
      out[#out + 1] = rows[i]
      if #out - 2 >= limit then return out end
    end
  end
  if #rows < 512 then out[1] = 'end'; return out end
end
return out
"#;

/// KEYS: the target's migration marker, then n legacy keys, then their n new names.
/// ARGV: the marker's value. Moves every legacy key unless one of the new names is
/// taken (then nothing moves: two histories are never spliced); either way it marks the
/// target, so a namespace is adopted at most once. Answers 'done' (marked before),
/// 'occupied' or 'moved'.
const ADOPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 'done' end
local n = (#KEYS - 1) / 2
local answer = 'moved'
for i = 1, n do
  if redis.call('EXISTS', KEYS[1 + n + i]) == 1 then answer = 'occupied' end
end
if answer == 'moved' then
  for i = 1, n do
    if redis.call('EXISTS', KEYS[1 + i]) == 1 then redis.call('RENAME', KEYS[1 + i], KEYS[1 + n + i]) end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return answer
"#;

/// What [`RedisStore::adopt_legacy`] did.
#[derive(Debug)]
pub enum Adoption {
    /// No legacy namespace, or adopted before.
    Nothing,
    /// `keys` keys moved from the legacy namespace; `entry` audits it.
    Moved {
        from: String,
        keys: usize,
        entry: AuditEntry,
    },
    /// Both namespaces hold data: the legacy one was left where it is (audited).
    LeftInPlace { from: String, entry: AuditEntry },
}

/// How to connect, beyond the URL.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// The ACL user and password (from the keyring; never in the URL or config.toml).
    pub credential: Option<Credential>,
    /// For `rediss://`: a PEM file of the CA(s) to trust instead of the system's (a
    /// team's private CA). The server's certificate and name are always verified: the
    /// build has no way to turn that off.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Connect {
    fn client(&self, url: &str) -> std::result::Result<redis::Client, String> {
        use redis::IntoConnectionInfo;
        let mut info = url.into_connection_info().map_err(|e| e.to_string())?;
        if let Some(c) = &self.credential {
            let settings = info
                .redis_settings()
                .clone()
                .set_username(&c.user)
                .set_password(&c.password);
            info = info.set_redis_settings(settings);
        }
        let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        match &self.ca_file {
            None => redis::Client::open(info).map_err(|e| e.to_string()),
            Some(path) if !tls => Err(format!(
                "store.ca_file ({}) is set but store.url is not rediss:// — the CA would go unused and the connection be in clear text",
                path.display()
            )),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("store.ca_file {}: {e}", path.display()))?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(info, certs)
                    .map_err(|e| format!("store.ca_file {}: {e}", path.display()))
            }
        }
    }
}

/// The keys any namespace that was ever used holds at least one of.
const NAMESPACE_MARKS: [&str; 5] = ["audit:head", "permissions", "deals", "actions", "contacts"];

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

/// What `doctor` reports about the server.
#[derive(Debug, Clone)]
pub struct Health {
    pub latency: Duration,
    pub namespace: String,
    pub keys_in_namespace: u64,
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
        // Fail at open, not at first use, when the server is not there.
        store.with(|c| redis::cmd("PING").query::<String>(c))?;
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

    /// Moves the namespace `legacy` (what dealflow keyed this user's data by before
    /// namespaces were verified identities: the Unix account, or "sandbox") into this
    /// one, once: the first open after sign-in finds the old keys and renames them in
    /// one script, and audits it here, naming where they came from. Who calls this
    /// must derive `legacy` from something the caller cannot choose (the uid's account),
    /// never from `$USER`, or anyone could adopt anyone's data.
    pub fn adopt_legacy(&self, legacy: &str, mut entry: NewAuditEntry) -> Result<Adoption> {
        let legacy = clean_namespace(legacy).map_err(|e| self.err(e))?;
        if legacy == self.namespace {
            return Ok(Adoption::Nothing);
        }
        let marker = self.key("adopted");
        let old = Self::prefix_of(&legacy);
        // Two cheap round trips on every open; the scan only when there is something.
        // A member's ACL user reaches only its own namespace: refused here, it is not this
        // namespace's user, and the command's own reads will say so; refused below, it
        // cannot see (or take) an old namespace: nothing to adopt with this credential.
        let marked: bool = match self.with(|c| redis::cmd("EXISTS").arg(&marker).query(c)) {
            Ok(m) => m,
            Err(e) if refused_by_acl(&e) => return Ok(Adoption::Nothing),
            Err(e) => return Err(e),
        };
        if marked {
            return Ok(Adoption::Nothing);
        }
        let probes: Vec<String> = NAMESPACE_MARKS
            .iter()
            .map(|k| format!("{old}{k}"))
            .collect();
        let present: u64 = match self.with(|c| redis::cmd("EXISTS").arg(&probes).query(c)) {
            Ok(n) => n,
            Err(e) if refused_by_acl(&e) => return Ok(Adoption::Nothing),
            Err(e) => return Err(e),
        };
        if present == 0 {
            return Ok(Adoption::Nothing);
        }
        let keys = self.scan(&format!("{old}*"))?;
        let renamed: Vec<String> = keys.iter().map(|k| self.key(&k[old.len()..])).collect();
        let stamp = json(&serde_json::json!({ "from": legacy, "at": entry.ts }));
        let answer: String = self.with(|c| {
            let script = Script::new(ADOPT);
            let mut inv = script.key(&marker);
            for k in keys.iter().chain(&renamed) {
                inv.key(k);
            }
            inv.arg(&stamp).invoke(c)
        })?;
        let moved = match answer.as_str() {
            "moved" => true,
            "occupied" => false,
            _ => return Ok(Adoption::Nothing),
        };
        // The cached head (if any) was this namespace's before the move.
        *self.audit_head.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let serde_json::Value::Object(m) = &mut entry.detail {
            m.insert("from_namespace".into(), legacy.clone().into());
            m.insert("keys".into(), keys.len().into());
            m.insert("moved".into(), moved.into());
        }
        let entry = self.append_audit(entry)?;
        Ok(if moved {
            Adoption::Moved {
                from: legacy,
                keys: keys.len(),
                entry,
            }
        } else {
            Adoption::LeftInPlace {
                from: legacy,
                entry,
            }
        })
    }

    /// Every key matching `pattern`.
    fn scan(&self, pattern: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let mut out = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                out.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            Ok(out)
        })
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

    /// PING latency and how many keys this namespace holds, for `dealflow doctor`.
    pub fn health(&self) -> Result<Health> {
        let start = Instant::now();
        self.with(|c| redis::cmd("PING").query::<String>(c))?;
        let latency = start.elapsed();
        let pattern = self.key("*");
        let keys_in_namespace = self.with(|c| {
            let mut n = 0u64;
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                n += batch.len() as u64;
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            Ok(n)
        })?;
        Ok(Health {
            latency,
            namespace: self.namespace.clone(),
            keys_in_namespace,
        })
    }

    /// Deletes every key of this user's namespace (tests, and `doctor`-guided resets).
    pub fn purge_namespace(&self) -> Result<u64> {
        let pattern = self.key("*");
        self.with(|c| {
            let mut n = 0u64;
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                if !batch.is_empty() {
                    n += redis::cmd("DEL").arg(&batch).query::<u64>(c)?;
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            Ok(n)
        })
    }

    /// The audit entries `keep` selects, newest first, read back from the head a page at
    /// a time and only until the entries are older than `since`: a count over the last
    /// day costs the last day's entries, not the log.
    fn read_back(
        &self,
        since: Millis,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Result<Vec<AuditEntry>> {
        let key = self.key("audit");
        let mut out = Vec::new();
        let mut start = 0isize;
        const PAGE: isize = 500;
        loop {
            let rows: Vec<String> = self.with(|c| {
                redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(start)
                    .arg(start + PAGE - 1)
                    .arg("REV")
                    .query(c)
            })?;
            if rows.is_empty() {
                return Ok(out);
            }
            for r in &rows {
                let e = serde_json::from_str::<AuditEntry>(r)
                    .map_err(|e| self.corrupt(format!("audit entry: {e}")))?;
                if e.ts < since {
                    return Ok(out);
                }
                if keep(&e) {
                    out.push(e);
                }
            }
            start += PAGE;
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

    fn parse_action(&self, id: &str, m: BTreeMap<String, String>) -> Result<Action> {
        let field = |k: &str| {
            m.get(k)
                .ok_or_else(|| self.corrupt(format!("action {id}: missing {k}")))
        };
        let mut a: Action = serde_json::from_str(field("body")?)
            .map_err(|e| self.corrupt(format!("action {id}: {e}")))?;
        let state = field("state")?;
        a.state = ActionState::parse(state)
            .ok_or_else(|| self.corrupt(format!("action {id}: unknown state {state:?}")))?;
        a.version = field("version")?
            .parse()
            .map_err(|e| self.corrupt(format!("action {id}: version: {e}")))?;
        a.updated_at = field("updated_at")?
            .parse()
            .map_err(|e| self.corrupt(format!("action {id}: updated_at: {e}")))?;
        a.params = serde_json::from_str(field("params")?)
            .map_err(|e| self.corrupt(format!("action {id}: params: {e}")))?;
        a.outcome = m.get("outcome").cloned();
        a.evidence = m
            .get("evidence")
            .map(|e| serde_json::from_str(e))
            .transpose()
            .map_err(|e| self.corrupt(format!("action {id}: evidence: {e}")))?;
        Ok(a)
    }

    /// The ids of the actions in `states` (empty: all), from their state fields alone.
    fn ids_in(&self, states: &[ActionState]) -> Result<Vec<String>> {
        let set = self.key("actions");
        let ids: Vec<String> = self.with(|c| redis::cmd("SMEMBERS").arg(&set).query(c))?;
        if ids.is_empty() {
            return Ok(ids);
        }
        let found: Vec<Option<String>> = self.with(|c| {
            let mut p = redis::pipe();
            for id in &ids {
                p.cmd("HGET")
                    .arg(self.key(&format!("action:{id}")))
                    .arg("state");
            }
            p.query(c)
        })?;
        Ok(ids
            .into_iter()
            .zip(found)
            .filter_map(|(id, s)| {
                let s = ActionState::parse(&s?)?;
                (states.is_empty() || states.contains(&s)).then_some(id)
            })
            .collect())
    }

    fn fetch_action(&self, id: &str) -> Result<Option<Action>> {
        let key = self.key(&format!("action:{id}"));
        let m: BTreeMap<String, String> =
            self.with(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        if m.is_empty() {
            return Ok(None);
        }
        self.parse_action(id, m).map(Some)
    }

    fn conflict(&self, id: &str, expected: ActionState, version: i64, r: &[String]) -> StoreError {
        match (
            r.get(1).and_then(|s| ActionState::parse(s)),
            r.get(2).and_then(|v| v.parse().ok()),
        ) {
            (Some(found), Some(found_version)) => StoreError::Conflict {
                id: id.to_string(),
                expected,
                version,
                found,
                found_version,
            },
            _ => self.corrupt(format!("action {id}: unreadable state or version")),
        }
    }

    /// Seals `entry` on the current head and appends it if the head has not moved;
    /// with `perms`, also replaces the permissions body if it is still `expected`.
    /// Returns None when someone else got there first (the caller retries).
    fn try_append(
        &self,
        entry: &NewAuditEntry,
        perms: Option<(&Option<String>, &str)>,
    ) -> Result<Option<AuditEntry>> {
        let head_key = self.key("audit:head");
        let cached = self
            .audit_head
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (count, prev) = match cached {
            Some(h) => h,
            None => self.audit_head()?,
        };
        let sealed = audit::seal(count + 1, &prev, entry.clone());
        let (mode, expected, body) = match perms {
            None => ("0", String::new(), String::new()),
            Some((expected, body)) => ("1", expected.clone().unwrap_or_default(), body.to_string()),
        };
        let answer: Vec<String> = self.with(|c| {
            self.append
                .key(self.key("audit"))
                .key(&head_key)
                .key(self.key("permissions"))
                .arg(count)
                .arg(&prev)
                .arg(sealed.seq)
                .arg(json(&sealed))
                .arg(&sealed.hash)
                .arg(GENESIS)
                .arg(mode)
                .arg(expected)
                .arg(body)
                .invoke(c)
        })?;
        let remember = |h: Option<(i64, String)>| {
            *self.audit_head.lock().unwrap_or_else(|p| p.into_inner()) = h;
        };
        match answer.first().map(String::as_str) {
            Some("ok") => {
                remember(Some((sealed.seq, sealed.hash.clone())));
                Ok(Some(sealed))
            }
            Some("head") => {
                let now = answer
                    .get(1)
                    .and_then(|c| c.parse().ok())
                    .zip(answer.get(2).cloned());
                remember(now);
                Ok(None)
            }
            Some("perms") => Ok(None),
            _ => Err(self.corrupt(format!("audit append: unexpected answer {answer:?}"))),
        }
    }

    fn backoff(attempt: u32) {
        // Jittered and short: the window between read and CAS is one round trip.
        let jitter = u64::from(rand::random::<u8>() % 4);
        std::thread::sleep(Duration::from_millis(u64::from(attempt.min(10)) + jitter));
    }
}

const MAX_ATTEMPTS: u32 = 1000;

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
        let ok: i64 = self.with(|c| {
            self.insert
                .key(self.key(&format!("action:{}", a.id)))
                .key(self.key("actions"))
                .arg(a.state.as_str())
                .arg(a.version)
                .arg(a.updated_at)
                .arg(json(&a.params))
                .arg(json(a))
                .arg(a.outcome.clone().unwrap_or_default())
                .arg(a.evidence.as_ref().map(json).unwrap_or_default())
                .arg(&a.id)
                .invoke(c)
        })?;
        if ok == 1 {
            Ok(())
        } else {
            Err(self.err(format!("action {} already exists", a.id)))
        }
    }

    fn get_action(&self, id: &str) -> Result<Action> {
        self.fetch_action(id)?
            .ok_or_else(|| StoreError::NotFound { id: id.to_string() })
    }

    fn list_actions(&self, f: &ActionFilter) -> Result<Vec<Action>> {
        let set = self.key("actions");
        let ids: Vec<String> = self.with(|c| redis::cmd("SMEMBERS").arg(&set).query(c))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let maps: Vec<BTreeMap<String, String>> = self.with(|c| {
            let mut p = redis::pipe();
            for id in &ids {
                p.cmd("HGETALL").arg(self.key(&format!("action:{id}")));
            }
            p.query(c)
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, m) in ids.iter().zip(maps) {
            if m.is_empty() {
                continue;
            }
            let a = self.parse_action(id, m)?;
            if f.states.is_empty() || f.states.contains(&a.state) {
                out.push(a);
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        if let Some(limit) = f.limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    /// Reads every action's state (one pipelined HGET each) and the full hash only of
    /// those in `q.states`: asking for the finished window skips the pending bodies.
    fn action_page(&self, q: &ActionPage) -> Result<Vec<Action>> {
        let ids = self.ids_in(&q.states)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let maps: Vec<BTreeMap<String, String>> = self.with(|c| {
            let mut p = redis::pipe();
            for id in &ids {
                p.cmd("HGETALL").arg(self.key(&format!("action:{id}")));
            }
            p.query(c)
        })?;
        let mut out = Vec::new();
        for (id, m) in ids.iter().zip(maps) {
            if m.is_empty() {
                continue;
            }
            let a = self.parse_action(id, m)?;
            if q.selects(&a) {
                out.push(a);
            }
        }
        out.sort_by(|a, b| (b.updated_at, &b.id).cmp(&(a.updated_at, &a.id)));
        out.truncate(q.limit);
        Ok(out)
    }

    fn count_actions(&self, states: &[ActionState]) -> Result<usize> {
        Ok(self.ids_in(states)?.len())
    }

    fn transition(&self, id: &str, t: &Transition) -> Result<Action> {
        if !t.from.can_go_to(t.to) {
            return Err(StoreError::InvalidTransition {
                id: id.to_string(),
                from: t.from,
                to: t.to,
            });
        }
        // Going back to proposed drops any consent: it covered the old moment.
        let (mode, evidence) = match &t.evidence {
            Some(e) => ("set", json(e)),
            None if t.to == ActionState::Proposed => ("clear", String::new()),
            None => ("keep", String::new()),
        };
        let r: Vec<String> = self.with(|c| {
            self.transition
                .key(self.key(&format!("action:{id}")))
                .arg(t.from.as_str())
                .arg(t.version)
                .arg(t.to.as_str())
                .arg(t.at)
                .arg(if t.outcome.is_some() { "1" } else { "0" })
                .arg(t.outcome.clone().unwrap_or_default())
                .arg(mode)
                .arg(evidence)
                .invoke(c)
        })?;
        match r.first().map(String::as_str) {
            Some("ok") => self.get_action(id),
            Some("missing") => Err(StoreError::NotFound { id: id.to_string() }),
            _ => Err(self.conflict(id, t.from, t.version, &r)),
        }
    }

    fn edit_action(&self, id: &str, version: i64, p: &ActionParams, at: i64) -> Result<Action> {
        let cur = self.get_action(id)?;
        if !matches!(
            cur.state,
            ActionState::Proposed | ActionState::AwaitingConsent | ActionState::Approved
        ) {
            return Err(StoreError::NotEditable {
                id: id.to_string(),
                state: cur.state,
            });
        }
        if p.kind() != cur.kind() {
            return Err(self.corrupt(format!(
                "an edit cannot change the kind of {id} from {} to {}",
                cur.kind(),
                p.kind()
            )));
        }
        let r: Vec<String> = self.with(|c| {
            self.edit
                .key(self.key(&format!("action:{id}")))
                .arg(version)
                .arg(json(p))
                .arg(at)
                .invoke(c)
        })?;
        match r.first().map(String::as_str) {
            Some("ok") => self.get_action(id),
            Some("missing") => Err(StoreError::NotFound { id: id.to_string() }),
            _ => Err(self.conflict(id, cur.state, version, &r)),
        }
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
        let key = self.key("audit");
        let rows: Vec<String> = self.with(|c| {
            redis::cmd("ZRANGE")
                .arg(&key)
                .arg(format!("({after}"))
                .arg("+inf")
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(limit)
                .query(c)
        })?;
        rows.iter()
            .map(|r| {
                serde_json::from_str::<AuditEntry>(r)
                    .map_err(|e| self.corrupt(format!("audit entry after #{after}: {e}")))
            })
            .collect()
    }

    /// A score range of the sorted set; with kinds, a server-side walk (`AUDIT_KINDS`)
    /// a bounded stretch per round trip until the page is full or the range ends.
    fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let key = self.key("audit");
        let parse = |r: &String| {
            serde_json::from_str::<AuditEntry>(r)
                .map_err(|e| self.corrupt(format!("audit entry: {e}")))
        };
        let low = format!("({}", q.after);
        let high = q.before.map_or("+inf".to_string(), |b| format!("({b}"));
        let (mut near, far) = if q.newest_first {
            (high, low)
        } else {
            (low, high)
        };
        if q.kinds.is_empty() {
            let rows: Vec<String> = self.with(|c| {
                let mut cmd = redis::cmd("ZRANGE");
                cmd.arg(&key).arg(&near).arg(&far).arg("BYSCORE");
                if q.newest_first {
                    cmd.arg("REV");
                }
                cmd.arg("LIMIT").arg(0).arg(q.limit).query(c)
            })?;
            return rows.iter().map(parse).collect();
        }
        let script = Script::new(AUDIT_KINDS);
        let mut out = Vec::new();
        while out.len() < q.limit {
            let answer: Vec<String> = self.with(|c| {
                let mut inv = script.key(&key);
                inv.arg(&far)
                    .arg(&near)
                    .arg(if q.newest_first { "1" } else { "0" })
                    .arg(q.limit - out.len())
                    .arg(4096);
                for k in &q.kinds {
                    inv.arg(k);
                }
                inv.invoke(c)
            })?;
            let [status, reached, rows @ ..] = answer.as_slice() else {
                return Err(self.corrupt(format!("audit query: unexpected answer {answer:?}")));
            };
            for r in rows {
                out.push(parse(r)?);
            }
            if status != "more" || reached.is_empty() {
                break;
            }
            near = format!("({reached}");
        }
        Ok(out)
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
        let key = self.key("audit:head");
        let head: (Option<i64>, Option<String>) = self.with(|c| {
            redis::cmd("HMGET")
                .arg(&key)
                .arg("count")
                .arg("hash")
                .query(c)
        })?;
        Ok((
            head.0.unwrap_or(0),
            head.1.unwrap_or_else(|| GENESIS.to_string()),
        ))
    }
}
