//! The user's audit chain in Redis: a stream (`audit:log`, see [`super::stream`]).
//! An append seals in Rust on the head last seen and is one `XADD` with the next ID,
//! which Redis refuses if anyone appended first (then the head is read again and the
//! entry resealed); a permission change goes through a script that does the same
//! `XADD` and swaps the permissions body only if it is still the one read. Paged and
//! kind-filtered reads walk the stream by ID.

use super::scripts::AUDIT_KINDS;
use super::stream::{self, Rows};
use super::{RedisStore, json};
use crate::core::audit::{self, AuditEntry, NewAuditEntry};
use crate::core::domain::Millis;
use crate::store::{AuditQuery, Result};
use redis::Script;
use std::time::Duration;

pub(super) const MAX_ATTEMPTS: u32 = 1000;

/// The stream the user's chain lives in.
pub(super) const LOG: &str = "audit:log";

impl RedisStore {
    /// The audit entries `keep` selects, newest first, read back from the head a page at
    /// a time and only until the entries are older than `since`: a count over the last
    /// day costs the last day's entries, not the log.
    pub(super) fn read_back(
        &self,
        since: Millis,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Result<Vec<AuditEntry>> {
        let key = self.key(LOG);
        let mut out = Vec::new();
        let mut before = "+".to_string();
        const PAGE: usize = 500;
        loop {
            let rows: Rows = self.with(|c| {
                redis::cmd("XREVRANGE")
                    .arg(&key)
                    .arg(&before)
                    .arg("-")
                    .arg("COUNT")
                    .arg(PAGE)
                    .query(c)
            })?;
            let Some((last_id, _)) = rows.last() else {
                return Ok(out);
            };
            before = format!("({last_id}");
            let full = rows.len() == PAGE;
            for e in self.parse_rows(rows, "audit")? {
                if e.ts < since {
                    return Ok(out);
                }
                if keep(&e) {
                    out.push(e);
                }
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// The entries of `XRANGE`/`XREVRANGE` rows; `log` names the chain in errors.
    pub(super) fn parse_rows(&self, rows: Rows, log: &str) -> Result<Vec<AuditEntry>> {
        rows.into_iter()
            .map(|(id, fields)| {
                let body = stream::body(fields)
                    .ok_or_else(|| self.corrupt(format!("{log} {id}: no entry")))?;
                self.parse_entry(&format!("{log} {id}"), &body)
            })
            .collect()
    }

    fn parse_entry(&self, at: &str, body: &str) -> Result<AuditEntry> {
        serde_json::from_str::<AuditEntry>(body).map_err(|e| self.corrupt(format!("{at}: {e}")))
    }

    /// The entries of the chain in `stream` with `seq > after`, in order, at most `limit`.
    pub(super) fn stream_page(
        &self,
        stream: &str,
        after: i64,
        limit: usize,
        log: &str,
    ) -> Result<Vec<AuditEntry>> {
        let rows: Rows = self.with(|c| {
            redis::cmd("XRANGE")
                .arg(stream)
                .arg(stream::after(after))
                .arg("+")
                .arg("COUNT")
                .arg(limit)
                .query(c)
        })?;
        self.parse_rows(rows, log)
    }

    /// The head as the stream says: (the top seq ever appended, the newest entry's hash).
    pub(super) fn read_head(&self) -> Result<(i64, String)> {
        let key = self.key(LOG);
        let h = self.with(|c| stream::head(c, &key))?;
        Ok((h.top, h.hash))
    }

    /// Seals `entry` on the current head and appends it if the head has not moved;
    /// with `perms`, also replaces the permissions body if it is still `expected`.
    /// Returns None when someone else got there first (the caller retries).
    pub(super) fn try_append(
        &self,
        entry: &NewAuditEntry,
        perms: Option<(&Option<String>, &str)>,
    ) -> Result<Option<AuditEntry>> {
        let cached = self
            .audit_head
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (count, prev) = match cached {
            Some(h) => h,
            None => self.read_head()?,
        };
        let sealed = audit::seal(count + 1, &prev, entry.clone());
        let key = self.key(LOG);
        let remember = |h: Option<(i64, String)>| {
            *self.audit_head.lock().unwrap_or_else(|p| p.into_inner()) = h;
        };
        let appended = match perms {
            // None: past the first entry the stream was gone (NOMKSTREAM): read the head.
            None => self.with(|c| {
                match stream::xadd_cmd(&key, &sealed, true).query::<Option<String>>(c) {
                    Ok(id) => Ok(id.is_some()),
                    Err(e) if stream::id_taken(&e) => Ok(false),
                    Err(e) => Err(e),
                }
            })?,
            Some((expected, body)) => {
                let answer: String = self.with(|c| {
                    self.append
                        .key(&key)
                        .key(self.key("permissions"))
                        .arg(stream::id_of(sealed.seq))
                        .arg(json(&sealed))
                        .arg(expected.clone().unwrap_or_default())
                        .arg(body)
                        .invoke(c)
                })?;
                match answer.as_str() {
                    "ok" => true,
                    "head" => false,
                    // The permissions moved: the caller reads them again.
                    "perms" => return Ok(None),
                    _ => {
                        return Err(
                            self.corrupt(format!("audit append: unexpected answer {answer:?}"))
                        );
                    }
                }
            }
        };
        if appended {
            remember(Some((sealed.seq, sealed.hash.clone())));
            Ok(Some(sealed))
        } else {
            // Someone appended first: read the head again for the retry.
            remember(Some(self.read_head()?));
            Ok(None)
        }
    }

    pub(super) fn backoff(attempt: u32) {
        // Jittered and short: the window between read and CAS is one round trip.
        let jitter = u64::from(rand::random::<u8>() % 4);
        std::thread::sleep(Duration::from_millis(u64::from(attempt.min(10)) + jitter));
    }

    pub(super) fn read_audit_page(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        self.stream_page(&self.key(LOG), after, limit, "audit")
    }

    /// A range of the stream by ID; with kinds, a server-side walk (`AUDIT_KINDS`) a
    /// bounded stretch per round trip until the page is full or the range ends.
    pub(super) fn query_audit_entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let key = self.key(LOG);
        if q.limit == 0 || q.before.is_some_and(|b| b <= 1) {
            return Ok(Vec::new());
        }
        let low = stream::after(q.after);
        let high = q.before.map_or("+".to_string(), |b| format!("({b}-0"));
        let (mut near, far) = if q.newest_first {
            (high, low)
        } else {
            (low, high)
        };
        if q.kinds.is_empty() {
            let rows: Rows = self.with(|c| {
                let mut cmd = redis::cmd(if q.newest_first {
                    "XREVRANGE"
                } else {
                    "XRANGE"
                });
                cmd.arg(&key)
                    .arg(&near)
                    .arg(&far)
                    .arg("COUNT")
                    .arg(q.limit)
                    .query(c)
            })?;
            return self.parse_rows(rows, "audit");
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
                out.push(self.parse_entry("audit entry", r)?);
            }
            if status != "more" || reached.is_empty() {
                break;
            }
            near = format!("({reached}");
        }
        Ok(out)
    }
}
