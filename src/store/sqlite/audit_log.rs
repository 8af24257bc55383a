//! The audit chain in SQLite: appending under the write lock, reading and querying
//! entries, and verifying the chain on every core (a range of seqs each).

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

    /// Verification reads the log on every core: the head and the last seq are read in
    /// one transaction, then each core reads and checks a range of seqs on a read-only
    /// connection of its own (each row's hash needs only its bytes and its recorded
    /// prev_hash, borrowed straight from SQLite, detail unparsed), and the ranges are
    /// joined in order: each must begin where the one before ended. The first break
    /// reported is the one a walk from the first row would meet. Rows appended while it
    /// runs lie past the last seq read and are not part of the check.
    pub(super) fn verify_audit_rows(
        &self,
        progress: &dyn Fn(i64),
    ) -> Result<std::result::Result<i64, audit::ChainBreak>> {
        let mut conn = self.read_only()?;
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let (count, head) = self.read_head(&tx)?;
        let (first, last): (Option<i64>, Option<i64>) = tx
            .query_row("SELECT MIN(seq), MAX(seq) FROM audit", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(|e| self.err(e))?;
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(audit::ChainVerifier::default().finish(count, &head));
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Small logs are not worth a second connection.
        let parts = if last - first < 20_000 { 1 } else { cores };
        let span = (last - first + parts as i64) / parts as i64;
        let done = std::sync::atomic::AtomicI64::new(0);
        let ranges: Vec<Result<RangeCheck>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..parts as i64)
                .map(|k| {
                    let (lo, hi) = (first + k * span, (first + (k + 1) * span - 1).min(last));
                    let done = &done;
                    scope.spawn(move || self.verify_range(lo, hi, done))
                })
                .collect();
            while !handles.iter().all(|h| h.is_finished()) {
                progress(done.load(std::sync::atomic::Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(50));
            }
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(self.corrupt("a verification thread failed".to_string()))
                    })
                })
                .collect::<Vec<_>>()
        });
        // Join in order: a range begins where the one before ended. A range that could
        // not be read matters only if nothing before it broke (a walk stops there).
        let mut v = audit::ChainVerifier::default();
        for r in ranges {
            let r = r?;
            let Some((seq, prev)) = &r.first else {
                continue;
            };
            if let Err(b) = v.link(*seq, prev, prev) {
                return Ok(Err(b));
            }
            if let Some(b) = r.broken {
                return Ok(Err(b));
            }
            v = audit::ChainVerifier::resume(r.next_seq, &r.last_hash);
        }
        progress(v.count());
        Ok(v.finish(count, &head))
    }

    fn read_only(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.err(e))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| self.err(e))?;
        Ok(conn)
    }

    /// Checks the rows with seq in `lo..=hi` on a connection of its own.
    fn verify_range(
        &self,
        lo: i64,
        hi: i64,
        done: &std::sync::atomic::AtomicI64,
    ) -> Result<RangeCheck> {
        let mut conn = self.read_only()?;
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let mut st = tx
            .prepare(
                "SELECT seq, ts, actor, surface, event, action_id, outcome, detail, prev_hash, hash
                 FROM audit WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = st.query(params![lo, hi]).map_err(|e| self.err(e))?;
        let mut out = RangeCheck::default();
        let mut v: Option<audit::ChainVerifier> = None;
        let mut n = 0i64;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let seq: i64 = r.get(0).map_err(|e| self.err(e))?;
            let text = |i| -> Result<&str> {
                self.opt_str(r, i)?
                    .ok_or_else(|| self.corrupt(format!("audit #{seq}: column {i} is null")))
            };
            let prev_hash = text(8)?;
            let v = v.get_or_insert_with(|| {
                out.first = Some((seq, prev_hash.to_string()));
                audit::ChainVerifier::resume(seq, prev_hash)
            });
            let surface = match self.opt_str(r, 3)? {
                None => None,
                Some(s) => match Surface::parse(s) {
                    Some(s) => Some(s),
                    None => {
                        out.broken = Some(audit::ChainBreak {
                            seq,
                            problem: format!("unknown surface {s:?} (the row was altered)"),
                        });
                        return Ok(out);
                    }
                },
            };
            let entry = audit::StoredEntry {
                seq,
                ts: r.get(1).map_err(|e| self.err(e))?,
                actor: text(2)?,
                surface,
                event: text(4)?,
                action_id: self.opt_str(r, 5)?,
                outcome: text(6)?,
                detail_json: text(7)?,
                prev_hash,
                hash: text(9)?,
            };
            if let Err(b) = v.push_stored(&entry) {
                out.broken = Some(b);
                return Ok(out);
            }
            n += 1;
            if n % 4096 == 0 {
                done.fetch_add(4096, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if let Some(v) = v {
            out.next_seq = v.count() + 1;
            out.last_hash = v.head().to_string();
        }
        Ok(out)
    }
}

/// What one range of the log showed: where it began (its first seq and the hash it
/// says came before), where it ended, and its first break.
#[derive(Default)]
struct RangeCheck {
    first: Option<(i64, String)>,
    next_seq: i64,
    last_hash: String,
    broken: Option<audit::ChainBreak>,
}
