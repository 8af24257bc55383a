//! The audit chain in Redis: appends sealed in Rust and compare-and-set by script
//! (retried with backoff under contention), and paged and kind-filtered reads.

use super::scripts::AUDIT_KINDS;
use super::{RedisStore, json};
use crate::core::audit::{self, AuditEntry, GENESIS, NewAuditEntry};
use crate::core::domain::Millis;
use crate::store::{AuditQuery, Result, Store};
use redis::Script;
use std::time::Duration;

pub(super) const MAX_ATTEMPTS: u32 = 1000;

impl RedisStore {
    /// The audit entries `keep` selects, newest first, read back from the head a page at
    /// a time and only until the entries are older than `since`: a count over the last
    /// day costs the last day's entries, not the log.
    pub(super) fn read_back(
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

    /// Seals `entry` on the current head and appends it if the head has not moved;
    /// with `perms`, also replaces the permissions body if it is still `expected`.
    /// Returns None when someone else got there first (the caller retries).
    pub(super) fn try_append(
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

    pub(super) fn backoff(attempt: u32) {
        // Jittered and short: the window between read and CAS is one round trip.
        let jitter = u64::from(rand::random::<u8>() % 4);
        std::thread::sleep(Duration::from_millis(u64::from(attempt.min(10)) + jitter));
    }

    pub(super) fn read_audit_page(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>> {
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
    pub(super) fn query_audit_entries(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
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
}
