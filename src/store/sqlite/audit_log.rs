//! The audit chain in SQLite: appending under the write lock, reading and querying
//! entries, and verifying the chain in parallel batches.

use super::SqliteStore;
use crate::core::audit::{self, AuditEntry, GENESIS, NewAuditEntry};
use crate::core::domain::{Millis, Surface};
use crate::store::{AuditQuery, Result, Store};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::time::Duration;

/// The columns an [`AuditEntry`] is read from, in `row_to_entry`'s order.
const AUDIT_COLUMNS: &str =
    "seq, ts, actor, surface, event, action_id, outcome, detail, prev_hash, hash";

/// An entry's `detail.kind`, exactly as the `audit_kind` index names it (the planner
/// uses the index only for the same expression). A row whose detail is not JSON (only
/// a hand-edited file has one) has no kind rather than failing the index.
const KIND_EXPR: &str = "(CASE WHEN json_valid(detail) THEN json_extract(detail, '$.kind') END)";

impl SqliteStore {
    /// The entries `query` (selecting seqs by one indexed key and `ts >= since`, newest
    /// first) names, read a row at a time through `audit_page`.
    pub(super) fn audit_by_index(
        &self,
        query: &str,
        key: &str,
        since: Millis,
    ) -> Result<Vec<AuditEntry>> {
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

    /// An audit row selected as [`AUDIT_COLUMNS`], parsed.
    pub(super) fn row_to_entry(&self, r: &rusqlite::Row<'_>) -> Result<AuditEntry> {
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
    pub(super) fn opt_str<'r>(
        &self,
        r: &'r rusqlite::Row<'_>,
        i: usize,
    ) -> Result<Option<&'r str>> {
        match r.get_ref(i).map_err(|e| self.err(e))? {
            rusqlite::types::ValueRef::Null => Ok(None),
            v => v.as_str().map(Some).map_err(|e| self.err(e)),
        }
    }

    /// The recorded head of the audit chain (count, last hash), read on `conn` (inside
    /// whatever transaction it is in).
    pub(super) fn read_head(&self, conn: &Connection) -> Result<(i64, String)> {
        let head: Option<(i64, String)> = conn
            .query_row("SELECT count, hash FROM audit_head WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(head.unwrap_or((0, GENESIS.to_string())))
    }

    pub(super) fn append_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        e: NewAuditEntry,
    ) -> Result<AuditEntry> {
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

    pub(super) fn append_audit_row(&self, entry: NewAuditEntry) -> Result<AuditEntry> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            let sealed = self.append_in(&tx, entry)?;
            tx.commit().map_err(|e| self.err(e))?;
            Ok(sealed)
        })
    }

    pub(super) fn read_audit_page(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>> {
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
    pub(super) fn query_audit_rows(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
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
    pub(super) fn verify_audit_rows(
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
