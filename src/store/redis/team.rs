//! A team on the Redis store: who its admins are, its policy, and its audit stream.
//!
//! Keys (the team name is a hash tag, as a user's namespace is):
//! - `dealflow:t:{<team>}:admins`: set of the admins' `sub`s, made by `team init`;
//! - `dealflow:t:{<team>}:policy`: the policy (JSON), which only admins change;
//! - `dealflow:t:{<team>}:audit`: a Redis stream, one entry per event, whose id is the
//!   entry's `seq` (`<seq>-0`) and whose `entry` field is the sealed entry (JSON), hash-
//!   chained like a member's own log.
//!
//! Why a stream with the seq as id: appending needs no script. A writer reads the last
//! entry, seals the next one on it and adds it under WATCH, so two writers never fork
//! the chain; and with Redis ACLs a member's user can be allowed exactly XADD and reads
//! on that key (a selector), so they can append but not rewrite or cut what is there.
//!
//! Who may change the policy is checked twice where ACLs are in force: dealflow reads
//! the admin set and refuses a non-admin with a clear message, and Redis refuses a
//! member user's write to the policy key whatever client it comes from. Without ACLs
//! only the first holds (anyone who can reach the server can write any key); `doctor`
//! says which applies.

use super::RedisStore;
use super::stream::xadd;
use crate::core::audit::{self, AuditEntry, ChainBreak, ChainVerifier, GENESIS, NewAuditEntry};
use crate::core::permissions::Permissions;
use crate::store::{Result, StoreError};

/// What a policy change does.
#[derive(Debug, Clone)]
pub enum PolicyOp<'a> {
    Set(&'a Permissions),
    Clear,
}

impl RedisStore {
    pub(crate) fn team_key_of(team: &str, k: &str) -> String {
        format!("dealflow:t:{{{team}}}:{k}")
    }

    /// The team this store is under, or why a team command cannot run.
    pub fn team(&self) -> Result<&str> {
        self.team
            .as_deref()
            .ok_or_else(|| StoreError::Permission("this store has no team (store.team)".into()))
    }

    fn tkey(&self, k: &str) -> Result<String> {
        Ok(Self::team_key_of(self.team()?, k))
    }

    /// The team's admins (`sub`s), empty when the team was never set up.
    pub fn team_admins(&self) -> Result<Vec<String>> {
        let key = self.tkey("admins")?;
        let mut admins: Vec<String> = self.with(|c| redis::cmd("SMEMBERS").arg(&key).query(c))?;
        admins.sort();
        Ok(admins)
    }

    /// Whether the signed-in user (this store's namespace) is one of the team's admins.
    pub fn is_team_admin(&self) -> Result<bool> {
        let key = self.tkey("admins")?;
        self.with(|c| {
            redis::cmd("SISMEMBER")
                .arg(&key)
                .arg(&self.namespace)
                .query(c)
        })
    }

    /// Creates the team with this user as its first admin, and opens its audit stream
    /// with `entry` (`team.created`). Refused if the team exists.
    pub fn init_team(&self, entry: NewAuditEntry) -> Result<AuditEntry> {
        let team = self.team()?.to_string();
        let admins = self.tkey("admins")?;
        let stream = self.tkey("audit")?;
        let policy = self.tkey("policy")?;
        let mut entry = entry;
        with_team(&mut entry, &team);
        let me = self.namespace.clone();
        let sealed = self.with(|c| {
            redis::transaction(c, &[&admins, &stream, &policy], |c, pipe| {
                let taken: u64 = redis::cmd("EXISTS").arg(&admins).arg(&stream).query(c)?;
                if taken > 0 {
                    return Ok(Some(None));
                }
                let sealed = audit::seal(1, GENESIS, entry.clone());
                pipe.cmd("SADD").arg(&admins).arg(&me).ignore();
                xadd(pipe, &stream, &sealed);
                let done: Option<()> = pipe.query(c)?;
                Ok(done.map(|()| Some(sealed.clone())))
            })
        })?;
        sealed.ok_or_else(|| {
            StoreError::Permission(format!(
                "team {team} already exists: its admins add members (`dealflow team add-member`)"
            ))
        })
    }

    /// Makes `sub` an admin of the team too (an admin's act, audited in the stream).
    pub fn add_team_admin(&self, sub: &str, entry: NewAuditEntry) -> Result<AuditEntry> {
        self.require_admin()?;
        let key = self.tkey("admins")?;
        let sub = sub.to_string();
        self.team_write(entry, move |pipe| {
            pipe.cmd("SADD").arg(&key).arg(&sub).ignore();
        })
    }

    /// Takes `sub` off the admin list (an admin's act, audited in the stream).
    pub fn remove_team_admin(&self, sub: &str, entry: NewAuditEntry) -> Result<AuditEntry> {
        self.require_admin()?;
        let key = self.tkey("admins")?;
        let sub = sub.to_string();
        self.team_write(entry, move |pipe| {
            pipe.cmd("SREM").arg(&key).arg(&sub).ignore();
        })
    }

    /// Refuses, naming the admins, unless the signed-in user is one.
    pub(crate) fn require_admin(&self) -> Result<()> {
        let team = self.team()?.to_string();
        let admins = self.team_admins()?;
        if admins.is_empty() {
            return Err(StoreError::Permission(format!(
                "team {team} is not set up: one of its admins runs `dealflow team init` first"
            )));
        }
        if !admins.contains(&self.namespace) {
            return Err(StoreError::Permission(format!(
                "only an admin of team {team} can change it (admins: {}); you are signed in as {}",
                admins.join(", "),
                self.namespace
            )));
        }
        Ok(())
    }

    /// Sets or clears the team policy: admins only. The change and its entry in the
    /// team's stream land together (one MULTI under WATCH of the stream); it is also
    /// audited in the admin's own log (`own`). Returns (team entry, own entry).
    pub fn change_team_policy(
        &self,
        op: PolicyOp<'_>,
        mut team_entry: NewAuditEntry,
        own: NewAuditEntry,
    ) -> Result<(AuditEntry, AuditEntry)> {
        self.require_admin()?;
        let key = self.tkey("policy")?;
        let mut own = own;
        let team = self.team()?.to_string();
        for e in [&mut team_entry, &mut own] {
            with_team(e, &team);
            if let (PolicyOp::Set(p), serde_json::Value::Object(m)) = (&op, &mut e.detail) {
                m.insert("policy".into(), serde_json::to_value(p).unwrap_or_default());
            }
        }
        let body = match &op {
            PolicyOp::Set(p) => Some(serde_json::to_string(p).unwrap_or_default()),
            PolicyOp::Clear => None,
        };
        let t = self.team_write(team_entry, |pipe| match &body {
            Some(b) => {
                pipe.cmd("SET").arg(&key).arg(b).ignore();
            }
            None => {
                pipe.cmd("DEL").arg(&key).ignore();
            }
        })?;
        let own = crate::store::Store::append_audit(self, own)?;
        Ok((t, own))
    }

    /// [`Self::change_team_policy`] with one entry for both logs.
    pub fn set_team_policy(
        &self,
        policy: &Permissions,
        entry: NewAuditEntry,
    ) -> Result<AuditEntry> {
        let (_, own) = self.change_team_policy(PolicyOp::Set(policy), entry.clone(), entry)?;
        Ok(own)
    }

    /// [`Self::change_team_policy`] clearing, with one entry for both logs.
    pub fn clear_team_policy(&self, entry: NewAuditEntry) -> Result<AuditEntry> {
        let (_, own) = self.change_team_policy(PolicyOp::Clear, entry.clone(), entry)?;
        Ok(own)
    }

    /// Appends `entry` to the team's stream (any member: a lead's approval, …).
    pub fn append_team_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry> {
        let mut entry = entry;
        with_team(&mut entry, self.team()?);
        self.team_write(entry, |_| {})
    }

    /// [`Self::team_write`] with the team named in the entry.
    pub(crate) fn team_write_audited(
        &self,
        mut entry: NewAuditEntry,
        also: impl Fn(&mut redis::Pipeline),
    ) -> Result<AuditEntry> {
        with_team(&mut entry, self.team()?);
        self.team_write(entry, also)
    }

    /// Seals `entry` on the stream's last entry and adds it, with whatever `also` puts
    /// in the same MULTI, retrying while another writer moves the stream.
    fn team_write(
        &self,
        entry: NewAuditEntry,
        also: impl Fn(&mut redis::Pipeline),
    ) -> Result<AuditEntry> {
        let stream = self.tkey("audit")?;
        let sealed = self.with(|c| {
            redis::transaction(c, &[&stream], |c, pipe| {
                let (count, head) = stream_head(c, &stream)?;
                let sealed = audit::seal(count + 1, &head, entry.clone());
                also(pipe);
                xadd(pipe, &stream, &sealed);
                let done: Option<()> = pipe.query(c)?;
                Ok(done.map(|()| sealed.clone()))
            })
        })?;
        Ok(sealed)
    }

    /// The team's stream entries with `seq > after`, in order, at most `limit`.
    pub fn team_audit_page(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        let stream = self.tkey("audit")?;
        self.stream_page(&stream, after, limit, "team audit")
    }

    /// Walks the team's chain. The stream's own count of entries ever added (which no
    /// member can rewrite) stands in for the recorded head: an entry deleted from the
    /// end is a break, not a shorter log.
    pub fn verify_team_audit(&self) -> Result<std::result::Result<i64, ChainBreak>> {
        let stream = self.tkey("audit")?;
        let mut v = ChainVerifier::default();
        let mut after = 0;
        loop {
            let page = self.team_audit_page(after, 5000)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                if let Err(b) = v.push(e) {
                    return Ok(Err(b));
                }
            }
        }
        let added = self.with(|c| entries_added(c, &stream))?;
        let head = v.head().to_string();
        Ok(v.finish(added, &head))
    }

    /// Deletes the team's keys (tests, and an admin tearing a team down).
    pub fn purge_team(&self) -> Result<u64> {
        let keys = ["admins", "policy", "audit"]
            .iter()
            .map(|k| self.tkey(k))
            .collect::<Result<Vec<_>>>()?;
        self.with(|c| redis::cmd("DEL").arg(&keys).query(c))
    }
}

fn with_team(e: &mut NewAuditEntry, team: &str) {
    match &mut e.detail {
        serde_json::Value::Object(m) => {
            m.insert("team".into(), team.into());
        }
        other => *other = serde_json::json!({ "team": team }),
    }
}

/// (seq, hash) of the stream's last entry, or (0, genesis).
fn stream_head(c: &mut redis::Connection, stream: &str) -> redis::RedisResult<(i64, String)> {
    let last: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(c)?;
    let Some((_, fields)) = last.into_iter().next() else {
        return Ok((0, GENESIS.to_string()));
    };
    let body = super::stream::body(fields).unwrap_or_default();
    match serde_json::from_str::<AuditEntry>(&body) {
        Ok(e) => Ok((e.seq, e.hash)),
        Err(e) => Err(redis::RedisError::from((
            redis::ErrorKind::Parse,
            "team audit: unreadable last entry",
            e.to_string(),
        ))),
    }
}

/// XINFO STREAM's `entries-added` (0 when there is no stream).
fn entries_added(c: &mut redis::Connection, stream: &str) -> redis::RedisResult<i64> {
    let exists: bool = redis::cmd("EXISTS").arg(stream).query(c)?;
    if !exists {
        return Ok(0);
    }
    let info: Vec<redis::Value> = redis::cmd("XINFO").arg("STREAM").arg(stream).query(c)?;
    let mut it = info.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if redis::from_redis_value::<String>(k).ok().as_deref() == Some("entries-added") {
            return Ok(redis::from_redis_value(v)?);
        }
    }
    Ok(0)
}
