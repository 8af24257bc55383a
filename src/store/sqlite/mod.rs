//! The embedded store: one SQLite file in WAL mode, private to the user (file 0600 in a
//! 0700 directory). Safe for several processes (TUI, MCP server, batch) on one file:
//! transitions are single conditional UPDATEs and audit appends take the write lock
//! before reading the chain head.

use super::{ActionFilter, ActionPage, AuditQuery, Lease, Result, Store, StoreError, Transition};
use crate::core::audit::{self, AuditEntry, NewAuditEntry};
use crate::core::domain::{Action, ActionParams, ActionState, Contact, Deal, Millis, Stage};
use crate::core::permissions::{PermissionChange, Permissions};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

mod actions;
mod audit_log;
mod schema;

use schema::{SCHEMA, UPSERT_CONTACT, UPSERT_DEAL, add_deal_crm_column};

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
        // The schema batch and the migrations run once per schema version, not on every
        // open: parsing them cost start-up ~0.5 ms each time (the file records which
        // version it was brought to; an older one runs them again, and they are
        // idempotent, so two processes opening an old file at once is fine).
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| db_err(e.to_string()))?;
        // A file from a newer dealflow is left as it is (never taken back a version).
        if version < schema::VERSION {
            conn.execute_batch(SCHEMA)
                .map_err(|e| db_err(e.to_string()))?;
            add_deal_crm_column(&conn).map_err(|e| db_err(e.to_string()))?;
            conn.pragma_update(None, "user_version", schema::VERSION)
                .map_err(|e| db_err(e.to_string()))?;
        }
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
}

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
        self.insert_action_row(a)
    }

    fn get_action(&self, id: &str) -> Result<Action> {
        self.read_action_row(id)
    }

    fn list_actions(&self, f: &ActionFilter) -> Result<Vec<Action>> {
        self.read_action_rows(f)
    }

    fn action_page(&self, q: &ActionPage) -> Result<Vec<Action>> {
        self.read_action_page(q)
    }

    fn count_actions(&self, states: &[ActionState]) -> Result<usize> {
        self.count_action_rows(states)
    }

    fn transition(&self, id: &str, t: &Transition) -> Result<Action> {
        self.transition_row(id, t)
    }

    fn edit_action(&self, id: &str, version: i64, p: &ActionParams, at: i64) -> Result<Action> {
        self.edit_action_row(id, version, p, at)
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
        self.append_audit_row(entry)
    }

    fn audit_page(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        self.read_audit_page(after, limit)
    }

    fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.query_audit_rows(q)
    }

    fn verify_audit(&self) -> Result<std::result::Result<i64, audit::ChainBreak>> {
        self.verify_audit_progress(&|_| {})
    }

    fn verify_audit_progress(
        &self,
        progress: &dyn Fn(i64),
    ) -> Result<std::result::Result<i64, audit::ChainBreak>> {
        self.verify_audit_rows(progress)
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
