//! The embedded store: one SQLite file in WAL mode, private to the user (file 0600 in a
//! 0700 directory). Safe for several processes (TUI, MCP server, batch) on one file:
//! transitions are single conditional UPDATEs and audit appends take the write lock
//! before reading the chain head.

use super::{ActionFilter, ActionPage, AuditQuery, Lease, Result, Store, StoreError, Transition};
use crate::core::audit::{self, AuditEntry, GENESIS, NewAuditEntry};
use crate::core::domain::{
    Action, ActionParams, ActionState, Contact, Deal, Millis, Stage, Surface,
};
use crate::core::permissions::{PermissionChange, Permissions};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS deals (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    account TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    stage TEXT NOT NULL,
    owner TEXT NOT NULL,
    last_touch INTEGER NOT NULL,
    notes TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS contacts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    account TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS actions (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    surface TEXT NOT NULL,
    confidence REAL NOT NULL,
    title TEXT NOT NULL,
    justification TEXT NOT NULL,
    params TEXT NOT NULL,
    original TEXT NOT NULL,
    evidence TEXT,
    outcome TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_state ON actions(state, created_at);
CREATE INDEX IF NOT EXISTS actions_state_updated ON actions(state, updated_at, id);
CREATE TABLE IF NOT EXISTS permissions (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    actor TEXT NOT NULL,
    surface TEXT,
    event TEXT NOT NULL,
    action_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_action ON audit(action_id, ts);
CREATE INDEX IF NOT EXISTS audit_event ON audit(event, ts);
CREATE INDEX IF NOT EXISTS audit_kind ON audit(
    (CASE WHEN json_valid(detail) THEN json_extract(detail, '$.kind') END), seq);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS caches (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL,
    hash TEXT NOT NULL
);
"#;

const UPSERT_DEAL: &str =
    "INSERT INTO deals (id, name, account, amount_cents, stage, owner, last_touch, notes, crm)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT(id) DO UPDATE SET name=excluded.name, account=excluded.account,
       amount_cents=excluded.amount_cents, stage=excluded.stage, owner=excluded.owner,
       last_touch=excluded.last_touch, notes=excluded.notes, crm=excluded.crm";

const UPSERT_CONTACT: &str =
    "INSERT INTO contacts (id, name, email, account, title) VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT(id) DO UPDATE SET name=excluded.name, email=excluded.email,
       account=excluded.account, title=excluded.title";

/// The columns an [`AuditEntry`] is read from, in `row_to_entry`'s order.
const AUDIT_COLUMNS: &str =
    "seq, ts, actor, surface, event, action_id, outcome, detail, prev_hash, hash";

/// An entry's `detail.kind`, exactly as the `audit_kind` index names it (the planner
/// uses the index only for the same expression). A row whose detail is not JSON (only
/// a hand-edited file has one) has no kind rather than failing the index.
const KIND_EXPR: &str = "(CASE WHEN json_valid(detail) THEN json_extract(detail, '$.kind') END)";

pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, fixing permissions on the way.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let shown = path.display().to_string();
        let db_err = |message: String| StoreError::Db {
            path: shown.clone(),
            message,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| db_err(format!("cannot create {}: {e}", dir.display())))?;
            set_mode(dir, 0o700).map_err(db_err)?;
        }
        if !path.exists() {
            create_private(path).map_err(db_err)?;
        }
        let conn = Connection::open(path).map_err(|e| db_err(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| db_err(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db_err(e.to_string()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| db_err(e.to_string()))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| db_err(e.to_string()))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| db_err(e.to_string()))?;
        add_deal_crm_column(&conn).map_err(|e| db_err(e.to_string()))?;
        // SQLite creates -wal/-shm beside the file; keep them as private as the file.
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", path.display()));
            if side.exists() {
                set_mode(&side, 0o600).map_err(db_err)?;
            }
        }
        Ok(SqliteStore {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries `query` (selecting seqs by one indexed key and `ts >= since`, newest
    /// first) names, read a row at a time through `audit_page`.
    fn audit_by_index(&self, query: &str, key: &str, since: Millis) -> Result<Vec<AuditEntry>> {
        let seqs: Vec<i64> = self.with(|c| {
            let mut st = c.prepare_cached(query).map_err(|e| self.err(e))?;
            let rows = st
                .query_map(params![key, since], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            rows.collect::<std::result::Result<Vec<i64>, _>>()
                .map_err(|e| self.err(e))
        })?;
        let mut out = Vec::new();
        for seq in seqs {
            out.extend(self.audit_page(seq - 1, 1)?);
        }
        Ok(out)
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        // A poisoned lock only means another thread panicked mid-call; SQLite's own
        // transactions keep the file consistent, so carry on with the connection.
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// An audit row selected as [`AUDIT_COLUMNS`], parsed.
    fn row_to_entry(&self, r: &rusqlite::Row<'_>) -> Result<AuditEntry> {
        let seq: i64 = r.get(0).map_err(|e| self.err(e))?;
        let surface: Option<String> = r.get(3).map_err(|e| self.err(e))?;
        let surface = match surface {
            None => None,
            Some(s) => Some(
                Surface::parse(&s)
                    .ok_or_else(|| self.corrupt(format!("audit #{seq}: unknown surface {s:?}")))?,
            ),
        };
        let detail: String = r.get(7).map_err(|e| self.err(e))?;
        let detail = serde_json::from_str(&detail)
            .map_err(|e| self.corrupt(format!("audit #{seq}: detail: {e}")))?;
        Ok(AuditEntry {
            seq,
            ts: r.get(1).map_err(|e| self.err(e))?,
            actor: r.get(2).map_err(|e| self.err(e))?,
            surface,
            event: r.get(4).map_err(|e| self.err(e))?,
            action_id: r.get(5).map_err(|e| self.err(e))?,
            outcome: r.get(6).map_err(|e| self.err(e))?,
            detail,
            prev_hash: r.get(8).map_err(|e| self.err(e))?,
            hash: r.get(9).map_err(|e| self.err(e))?,
        })
    }

    /// A text column, borrowed from the row (no copy).
    fn opt_str<'r>(&self, r: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r str>> {
        match r.get_ref(i).map_err(|e| self.err(e))? {
            rusqlite::types::ValueRef::Null => Ok(None),
            v => v.as_str().map(Some).map_err(|e| self.err(e)),
        }
    }

    fn row_to_action(&self, r: &rusqlite::Row<'_>) -> Result<Action> {
        let get = |i: usize| -> Result<String> { r.get::<_, String>(i).map_err(|e| self.err(e)) };
        let id = get(0)?;
        let state_s = get(1)?;
        let state = ActionState::parse(&state_s)
            .ok_or_else(|| self.corrupt(format!("action {id}: unknown state {state_s:?}")))?;
        let surface_s = get(3)?;
        let surface = Surface::parse(&surface_s)
            .ok_or_else(|| self.corrupt(format!("action {id}: unknown surface {surface_s:?}")))?;
        let params: ActionParams = serde_json::from_str(&get(7)?)
            .map_err(|e| self.corrupt(format!("action {id}: params: {e}")))?;
        let original: ActionParams = serde_json::from_str(&get(8)?)
            .map_err(|e| self.corrupt(format!("action {id}: original: {e}")))?;
        let evidence: Option<String> = r.get(9).map_err(|e| self.err(e))?;
        let evidence = evidence
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| self.corrupt(format!("action {id}: evidence: {e}")))?;
        Ok(Action {
            id,
            state,
            version: r.get(2).map_err(|e| self.err(e))?,
            surface,
            confidence: r.get(4).map_err(|e| self.err(e))?,
            title: get(5)?,
            justification: get(6)?,
            params,
            original,
            evidence,
            outcome: r.get(10).map_err(|e| self.err(e))?,
            created_at: r.get(11).map_err(|e| self.err(e))?,
            updated_at: r.get(12).map_err(|e| self.err(e))?,
        })
    }

    fn fetch_action(&self, conn: &Connection, id: &str) -> Result<Option<Action>> {
        let mut st = conn
            .prepare_cached(&format!("SELECT {ACTION_COLS} FROM actions WHERE id = ?1"))
            .map_err(|e| self.err(e))?;
        let mut rows = st.query(params![id]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(r) => Ok(Some(self.row_to_action(r)?)),
            None => Ok(None),
        }
    }

    /// The recorded head of the audit chain (count, last hash), read on `conn` (inside
    /// whatever transaction it is in).
    fn read_head(&self, conn: &Connection) -> Result<(i64, String)> {
        let head: Option<(i64, String)> = conn
            .query_row("SELECT count, hash FROM audit_head WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(head.unwrap_or((0, GENESIS.to_string())))
    }

    fn append_in(&self, tx: &rusqlite::Transaction<'_>, e: NewAuditEntry) -> Result<AuditEntry> {
        let (count, prev) = self.read_head(tx)?;
        let sealed = audit::seal(count + 1, &prev, e);
        tx.execute(
            "INSERT INTO audit (seq, ts, actor, surface, event, action_id, outcome, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                sealed.seq,
                sealed.ts,
                sealed.actor,
                sealed.surface.map(|s| s.as_str()),
                sealed.event,
                sealed.action_id,
                sealed.outcome,
                sealed.detail.to_string(),
                sealed.prev_hash,
                sealed.hash
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO audit_head (id, count, hash) VALUES (1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET count = excluded.count, hash = excluded.hash",
            params![sealed.seq, sealed.hash],
        )
        .map_err(|e| self.err(e))?;
        Ok(sealed)
    }
}

const ACTION_COLS: &str = "id, state, version, surface, confidence, title, justification, params, original, evidence, outcome, created_at, updated_at";

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set mode {mode:o} on {}: {e}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::result::Result<(), String> {
    Ok(())
}

fn create_private(path: &Path) -> std::result::Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        // Another process created it first: fine, it did so with the same mode.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A deal's CRM record as the `deals.crm` column holds it.
fn crm_json(d: &Deal) -> Option<String> {
    d.crm
        .as_ref()
        .map(|c| serde_json::to_string(c).unwrap_or_default())
}

/// Files made before deals could live in a CRM lack `deals.crm` (the record's revision,
/// as JSON): added in place, once.
fn add_deal_crm_column(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('deals') WHERE name = 'crm')",
        [],
        |r| r.get(0),
    )?;
    if !has {
        match conn.execute_batch("ALTER TABLE deals ADD COLUMN crm TEXT") {
            // Another process opening the same old file added it first.
            Err(e) if e.to_string().contains("duplicate column name") => {}
            other => other?,
        }
    }
    Ok(())
}

impl Store for SqliteStore {
    /// `PRAGMA data_version` moves when another connection commits; this connection's
    /// own commits are counted by `total_changes`. Both are in-memory reads.
    fn change_marker(&self) -> Option<u64> {
        let c = self.conn.lock().ok()?;
        let other: i64 = c.query_row("PRAGMA data_version", [], |r| r.get(0)).ok()?;
        let own = c.total_changes();
        Some((other as u64) << 32 ^ own)
    }
    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }

    fn upsert_deal(&self, d: &Deal) -> Result<()> {
        self.with(|c| {
            c.execute(
                UPSERT_DEAL,
                params![
                    d.id,
                    d.name,
                    d.account,
                    d.amount_cents,
                    d.stage.as_str(),
                    d.owner,
                    d.last_touch,
                    d.notes,
                    crm_json(d)
                ],
            )
            .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    fn list_deals(&self) -> Result<Vec<Deal>> {
        self.with(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT id, name, account, amount_cents, stage, owner, last_touch, notes, crm
                     FROM deals ORDER BY amount_cents DESC, id",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, Option<String>>(8)?,
                    ))
                })
                .map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, name, account, amount_cents, stage, owner, last_touch, notes, crm) =
                    row.map_err(|e| self.err(e))?;
                let crm = crm
                    .map(|c| serde_json::from_str(&c))
                    .transpose()
                    .map_err(|e| self.corrupt(format!("deal {id}: crm record: {e}")))?;
                let stage = Stage::parse(&stage)
                    .ok_or_else(|| self.corrupt(format!("deal {id}: unknown stage {stage:?}")))?;
                out.push(Deal {
                    id,
                    name,
                    account,
                    amount_cents,
                    stage,
                    owner,
                    last_touch,
                    notes,
                    crm,
                });
            }
            Ok(out)
        })
    }

    fn get_deal(&self, id: &str) -> Result<Option<Deal>> {
        Ok(self.list_deals()?.into_iter().find(|d| d.id == id))
    }

    fn upsert_contact(&self, ct: &Contact) -> Result<()> {
        self.with(|c| {
            c.execute(
                UPSERT_CONTACT,
                params![ct.id, ct.name, ct.email, ct.account, ct.title],
            )
            .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    fn upsert_many(&self, deals: &[Deal], contacts: &[Contact]) -> Result<()> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            {
                let mut st = tx.prepare_cached(UPSERT_DEAL).map_err(|e| self.err(e))?;
                for d in deals {
                    st.execute(params![
                        d.id,
                        d.name,
                        d.account,
                        d.amount_cents,
                        d.stage.as_str(),
                        d.owner,
                        d.last_touch,
                        d.notes,
                        crm_json(d)
                    ])
                    .map_err(|e| self.err(e))?;
                }
                let mut st = tx.prepare_cached(UPSERT_CONTACT).map_err(|e| self.err(e))?;
                for ct in contacts {
                    st.execute(params![ct.id, ct.name, ct.email, ct.account, ct.title])
                        .map_err(|e| self.err(e))?;
                }
            }
            tx.commit().map_err(|e| self.err(e))
        })
    }

    fn list_contacts(&self) -> Result<Vec<Contact>> {
        self.with(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT id, name, email, account, title FROM contacts ORDER BY name",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| {
                    Ok(Contact {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        email: r.get(2)?,
                        account: r.get(3)?,
                        title: r.get(4)?,
                    })
                })
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| self.err(e))
        })
    }

    fn insert_action(&self, a: &Action) -> Result<()> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO actions (kind, {ACTION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
                params![
                    a.kind().as_str(),
                    a.id,
                    a.state.as_str(),
                    a.version,
                    a.surface.as_str(),
                    a.confidence,
                    a.title,
                    a.justification,
                    json(&a.params),
                    json(&a.original),
                    a.evidence.as_ref().map(json),
                    a.outcome,
                    a.created_at,
                    a.updated_at
                ],
            )
            .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    fn get_action(&self, id: &str) -> Result<Action> {
        self.with(|c| {
            self.fetch_action(c, id)?
                .ok_or_else(|| StoreError::NotFound { id: id.to_string() })
        })
    }

    fn list_actions(&self, f: &ActionFilter) -> Result<Vec<Action>> {
        self.with(|c| {
            let states: Vec<&str> = f.states.iter().map(|s| s.as_str()).collect();
            let mut sql = format!("SELECT {ACTION_COLS} FROM actions");
            if !states.is_empty() {
                let marks = vec!["?"; states.len()].join(", ");
                sql.push_str(&format!(" WHERE state IN ({marks})"));
            }
            sql.push_str(" ORDER BY created_at DESC, id DESC");
            if let Some(limit) = f.limit {
                sql.push_str(&format!(" LIMIT {limit}"));
            }
            let mut st = c.prepare(&sql).map_err(|e| self.err(e))?;
            let mut rows = st
                .query(rusqlite::params_from_iter(states.iter()))
                .map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                out.push(self.row_to_action(r)?);
            }
            Ok(out)
        })
    }

    fn action_page(&self, q: &ActionPage) -> Result<Vec<Action>> {
        self.with(|c| {
            let states: Vec<&str> = q.states.iter().map(|s| s.as_str()).collect();
            let mut args: Vec<rusqlite::types::Value> =
                states.iter().map(|s| s.to_string().into()).collect();
            let mut sql = format!("SELECT {ACTION_COLS} FROM actions WHERE 1");
            if !states.is_empty() {
                let marks = vec!["?"; states.len()].join(", ");
                sql.push_str(&format!(" AND state IN ({marks})"));
            }
            if let Some((at, id)) = &q.before {
                sql.push_str(" AND (updated_at < ? OR (updated_at = ? AND id < ?))");
                args.extend([(*at).into(), (*at).into(), id.clone().into()]);
            }
            sql.push_str(&format!(
                " ORDER BY updated_at DESC, id DESC LIMIT {}",
                q.limit
            ));
            let mut st = c.prepare(&sql).map_err(|e| self.err(e))?;
            let mut rows = st
                .query(rusqlite::params_from_iter(args))
                .map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                out.push(self.row_to_action(r)?);
            }
            Ok(out)
        })
    }

    fn count_actions(&self, states: &[ActionState]) -> Result<usize> {
        self.with(|c| {
            let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
            let mut sql = "SELECT COUNT(*) FROM actions".to_string();
            if !names.is_empty() {
                let marks = vec!["?"; names.len()].join(", ");
                sql.push_str(&format!(" WHERE state IN ({marks})"));
            }
            let n: i64 = c
                .query_row(&sql, rusqlite::params_from_iter(names.iter()), |r| r.get(0))
                .map_err(|e| self.err(e))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    fn transition(&self, id: &str, t: &Transition) -> Result<Action> {
        if !t.from.can_go_to(t.to) {
            return Err(StoreError::InvalidTransition {
                id: id.to_string(),
                from: t.from,
                to: t.to,
            });
        }
        self.with(|c| {
            // Going back to proposed drops any consent: it covered the old moment.
            let evidence = t.evidence.as_ref().map(json);
            let keep_evidence = t.evidence.is_none() && t.to != ActionState::Proposed;
            let n = c
                .execute(
                    "UPDATE actions SET state = ?1, version = version + 1, updated_at = ?2,
                       outcome = COALESCE(?3, outcome),
                       evidence = CASE WHEN ?4 THEN evidence ELSE ?5 END
                     WHERE id = ?6 AND state = ?7 AND version = ?8",
                    params![
                        t.to.as_str(),
                        t.at,
                        t.outcome,
                        keep_evidence,
                        evidence,
                        id,
                        t.from.as_str(),
                        t.version
                    ],
                )
                .map_err(|e| self.err(e))?;
            let now = self
                .fetch_action(c, id)?
                .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
            if n == 1 {
                Ok(now)
            } else {
                Err(StoreError::Conflict {
                    id: id.to_string(),
                    expected: t.from,
                    version: t.version,
                    found: now.state,
                    found_version: now.version,
                })
            }
        })
    }

    fn edit_action(&self, id: &str, version: i64, p: &ActionParams, at: i64) -> Result<Action> {
        self.with(|c| {
            let cur = self
                .fetch_action(c, id)?
                .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
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
                return Err(StoreError::Corrupt {
                    path: self.path.display().to_string(),
                    message: format!(
                        "an edit cannot change the kind of {id} from {} to {}",
                        cur.kind(),
                        p.kind()
                    ),
                });
            }
            let n = c
                .execute(
                    "UPDATE actions SET params = ?1, state = 'proposed', evidence = NULL,
                       version = version + 1, updated_at = ?2
                     WHERE id = ?3 AND version = ?4 AND state IN ('proposed', 'awaiting_consent', 'approved')",
                    params![json(p), at, id, version],
                )
                .map_err(|e| self.err(e))?;
            let now = self
                .fetch_action(c, id)?
                .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
            if n == 1 {
                Ok(now)
            } else {
                Err(StoreError::Conflict {
                    id: id.to_string(),
                    expected: cur.state,
                    version,
                    found: now.state,
                    found_version: now.version,
                })
            }
        })
    }

    fn load_permissions(&self) -> Result<Permissions> {
        self.with(|c| {
            let body: Option<String> = c
                .query_row("SELECT body FROM permissions WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| self.err(e))?;
            match body {
                None => Ok(Permissions::default()),
                Some(b) => {
                    serde_json::from_str(&b).map_err(|e| self.corrupt(format!("permissions: {e}")))
                }
            }
        })
    }

    fn change_permissions(
        &self,
        change: &PermissionChange,
        mut audit: NewAuditEntry,
    ) -> Result<(Permissions, AuditEntry)> {
        let mut perms_now = self.load_permissions()?;
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            // Re-read inside the write lock so two concurrent changes both apply.
            let body: Option<String> = tx
                .query_row("SELECT body FROM permissions WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some(b) = body {
                perms_now = serde_json::from_str(&b)
                    .map_err(|e| self.corrupt(format!("permissions: {e}")))?;
            }
            let before = perms_now.clone();
            let summary = perms_now.apply(change).map_err(StoreError::Permission)?;
            tx.execute(
                "INSERT INTO permissions (id, body) VALUES (1, ?1)
                 ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                params![json(&perms_now)],
            )
            .map_err(|e| self.err(e))?;
            super::permission_change_detail(&mut audit.detail, change, &summary, &before);
            let entry = self.append_in(&tx, audit)?;
            tx.commit().map_err(|e| self.err(e))?;
            Ok((perms_now, entry))
        })
    }

    fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            let sealed = self.append_in(&tx, entry)?;
            tx.commit().map_err(|e| self.err(e))?;
            Ok(sealed)
        })
    }

    fn audit_page(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        self.with(|c| {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))
                .map_err(|e| self.err(e))?;
            let mut rows = st
                .query(params![after, limit as i64])
                .map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                out.push(self.row_to_entry(r)?);
            }
            Ok(out)
        })
    }

    /// A range of seq, walked by the primary key; with kinds, one range of the
    /// `audit_kind` index per kind, merged: each stops after `limit` rows.
    fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let (order, before) = (
            if q.newest_first { "DESC" } else { "ASC" },
            q.before.unwrap_or(i64::MAX),
        );
        let limit = q.limit as i64;
        let mut out = self.with(|c| {
            let mut out = Vec::new();
            let mut read = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<()> {
                let mut st = c.prepare_cached(sql).map_err(|e| self.err(e))?;
                let mut rows = st.query(p).map_err(|e| self.err(e))?;
                while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                    out.push(self.row_to_entry(r)?);
                }
                Ok(())
            };
            if q.kinds.is_empty() {
                read(
                    &format!(
                        "SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > ?1 AND seq < ?2
                         ORDER BY seq {order} LIMIT ?3"
                    ),
                    &[&q.after, &before, &limit],
                )?;
            } else {
                for kind in &q.kinds {
                    read(
                        &format!(
                            "SELECT {AUDIT_COLUMNS} FROM audit
                             WHERE {KIND_EXPR} = ?1 AND seq > ?2 AND seq < ?3
                             ORDER BY seq {order} LIMIT ?4"
                        ),
                        &[kind, &q.after, &before, &limit],
                    )?;
                }
            }
            Ok(out)
        })?;
        if q.kinds.len() > 1 {
            out.sort_by_key(|e| if q.newest_first { -e.seq } else { e.seq });
            out.dedup_by_key(|e| e.seq);
            out.truncate(q.limit);
        }
        Ok(out)
    }

    /// One read transaction on a connection of its own: a consistent snapshot (an
    /// append racing the check cannot look like rows cut off the end), no stall of this
    /// process's other store calls on a long log, and rows checked as stored, without
    /// parsing their detail.
    fn verify_audit(&self) -> Result<std::result::Result<i64, audit::ChainBreak>> {
        self.verify_audit_progress(&|_| {})
    }

    fn verify_audit_progress(
        &self,
        progress: &dyn Fn(i64),
    ) -> Result<std::result::Result<i64, audit::ChainBreak>> {
        let mut conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.err(e))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| self.err(e))?;
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let mut st = tx
            .prepare(
                "SELECT seq, ts, actor, surface, event, action_id, outcome, detail, prev_hash, hash
                 FROM audit ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([]).map_err(|e| self.err(e))?;
        let mut v = audit::ChainVerifier::default();
        // Rows are checked in batches: links in order on this thread, each row's own
        // hash (it needs only its bytes and its recorded prev_hash) on every core.
        let mut batch: Vec<OwnedEntry> = Vec::with_capacity(VERIFY_BATCH);
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let seq: i64 = r.get(0).map_err(|e| self.err(e))?;
            let surface = match self.opt_str(r, 3)? {
                None => None,
                Some(s) => match Surface::parse(s) {
                    Some(s) => Some(s),
                    None => {
                        // What came before it breaks first, as it would one row at a time.
                        if let Err(b) = verify_batch(&mut v, &batch) {
                            return Ok(Err(b));
                        }
                        return Ok(Err(audit::ChainBreak {
                            seq,
                            problem: format!("unknown surface {s:?} (the row was altered)"),
                        }));
                    }
                },
            };
            let text = |i| -> Result<String> {
                self.opt_str(r, i)?
                    .map(str::to_string)
                    .ok_or_else(|| self.corrupt(format!("audit #{seq}: column {i} is null")))
            };
            let entry = OwnedEntry {
                seq,
                ts: r.get(1).map_err(|e| self.err(e))?,
                actor: text(2)?,
                surface,
                event: text(4)?,
                action_id: self.opt_str(r, 5)?.map(str::to_string),
                outcome: text(6)?,
                detail_json: text(7)?,
                prev_hash: text(8)?,
                hash: text(9)?,
            };
            batch.push(entry);
            if batch.len() == VERIFY_BATCH {
                if let Err(b) = verify_batch(&mut v, &batch) {
                    return Ok(Err(b));
                }
                batch.clear();
                progress(v.count());
            }
        }
        if let Err(b) = verify_batch(&mut v, &batch) {
            return Ok(Err(b));
        }
        let (count, head) = self.read_head(&tx)?;
        Ok(v.finish(count, &head))
    }

    fn audit_head(&self) -> Result<(i64, String)> {
        self.with(|c| self.read_head(c))
    }

    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<std::result::Result<(), Lease>> {
        self.with(|c| {
            // One statement: the upsert applies only when the lease is free, expired or
            // ours, so of two racing processes exactly one changes the row.
            let n = c
                .execute(
                    "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?4)
                     ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                     WHERE leases.holder = ?2 OR leases.until <= ?3",
                    params![name, holder, now, until],
                )
                .map_err(|e| self.err(e))?;
            if n == 1 {
                return Ok(Ok(()));
            }
            c.query_row(
                "SELECT holder, until FROM leases WHERE name = ?1",
                params![name],
                |r| {
                    Ok(Lease {
                        name: name.to_string(),
                        holder: r.get(0)?,
                        until: r.get(1)?,
                    })
                },
            )
            .map(Err)
            .map_err(|e| self.err(e))
        })
    }

    fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
                params![name, holder],
            )
            .map(drop)
            .map_err(|e| self.err(e))
        })
    }

    fn leases(&self, now: Millis) -> Result<Vec<Lease>> {
        self.with(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT name, holder, until FROM leases WHERE until > ?1 ORDER BY name",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map(params![now], |r| {
                    Ok(Lease {
                        name: r.get(0)?,
                        holder: r.get(1)?,
                        until: r.get(2)?,
                    })
                })
                .map_err(|e| self.err(e))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))
        })
    }

    fn load_cache(&self, name: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT body FROM caches WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
        })
    }

    fn save_cache(&self, name: &str, body: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO caches (name, body) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET body = excluded.body",
                [name, body],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
        })
    }

    fn audit_about(&self, action_id: &str, since: Millis) -> Result<Vec<AuditEntry>> {
        self.audit_by_index(
            "SELECT seq FROM audit WHERE action_id = ?1 AND ts >= ?2 ORDER BY seq DESC",
            action_id,
            since,
        )
    }

    fn audit_events_since(&self, event: &str, since: Millis) -> Result<Vec<AuditEntry>> {
        self.audit_by_index(
            "SELECT seq FROM audit WHERE event = ?1 AND ts >= ?2 ORDER BY seq DESC",
            event,
            since,
        )
    }
}

/// Rows per verification batch: enough to spread the hashing over every core, few
/// enough that a batch stays small in memory.
const VERIFY_BATCH: usize = 8192;

/// An audit row as read, owned so a batch can be hashed on several threads.
struct OwnedEntry {
    seq: i64,
    ts: i64,
    actor: String,
    surface: Option<Surface>,
    event: String,
    action_id: Option<String>,
    outcome: String,
    detail_json: String,
    prev_hash: String,
    hash: String,
}

impl OwnedEntry {
    fn stored(&self) -> audit::StoredEntry<'_> {
        audit::StoredEntry {
            seq: self.seq,
            ts: self.ts,
            actor: &self.actor,
            surface: self.surface,
            event: &self.event,
            action_id: self.action_id.as_deref(),
            outcome: &self.outcome,
            detail_json: &self.detail_json,
            prev_hash: &self.prev_hash,
            hash: &self.hash,
        }
    }
}

/// Checks a batch as a one-row-at-a-time walk would, reporting the same first break:
/// the links in order (up to the first that breaks), and the rows before that break
/// hashed on every core; an altered row before a broken link is the break reported.
fn verify_batch(
    v: &mut audit::ChainVerifier,
    batch: &[OwnedEntry],
) -> std::result::Result<(), audit::ChainBreak> {
    let mut linked = batch.len();
    let mut link_break = None;
    for (i, e) in batch.iter().enumerate() {
        if let Err(b) = v.link(e.seq, &e.prev_hash, &e.hash) {
            linked = i;
            link_break = Some(b);
            break;
        }
    }
    if let Some(i) = first_altered(&batch[..linked]) {
        return Err(audit::altered(batch[i].seq));
    }
    link_break.map_or(Ok(()), Err)
}

/// The index of the first row whose content does not hash to its recorded hash.
fn first_altered(rows: &[OwnedEntry]) -> Option<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores == 1 || rows.len() < 512 {
        return rows.iter().position(|e| !e.stored().hash_matches());
    }
    let chunk = rows.len().div_ceil(cores);
    std::thread::scope(|scope| {
        let parts: Vec<_> = rows
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                scope.spawn(move || {
                    part.iter()
                        .position(|e| !e.stored().hash_matches())
                        .map(|i| k * chunk + i)
                })
            })
            .collect();
        parts
            .into_iter()
            .enumerate()
            // A hashing thread that died proves nothing: its part counts as altered.
            .filter_map(|(k, p)| p.join().unwrap_or(Some(k * chunk)))
            .min()
    })
}
