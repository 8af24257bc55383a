//! The SQLite file's tables and indexes, the upserts deals and contacts are written
//! with, and the in-place migration for files made by older versions.

use rusqlite::Connection;

/// The schema's version, kept in the file's `user_version`: bump it with any change to
/// [`SCHEMA`] or a migration, so files at an older one run them on the next open.
pub(super) const VERSION: i64 = 1;

pub(super) const SCHEMA: &str = r#"
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
-- (state, created_at, id): the queue's newest-first page is read from the index alone;
-- it replaces actions_state (state, created_at), of which it is a superset.
CREATE INDEX IF NOT EXISTS actions_state_created ON actions(state, created_at, id);
DROP INDEX IF EXISTS actions_state;
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

pub(super) const UPSERT_DEAL: &str =
    "INSERT INTO deals (id, name, account, amount_cents, stage, owner, last_touch, notes, crm)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT(id) DO UPDATE SET name=excluded.name, account=excluded.account,
       amount_cents=excluded.amount_cents, stage=excluded.stage, owner=excluded.owner,
       last_touch=excluded.last_touch, notes=excluded.notes, crm=excluded.crm";

pub(super) const UPSERT_CONTACT: &str =
    "INSERT INTO contacts (id, name, email, account, title) VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT(id) DO UPDATE SET name=excluded.name, email=excluded.email,
       account=excluded.account, title=excluded.title";
/// Files made before deals could live in a CRM lack `deals.crm` (the record's revision,
/// as JSON): added in place, once.
pub(super) fn add_deal_crm_column(conn: &Connection) -> rusqlite::Result<()> {
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
