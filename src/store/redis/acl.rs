//! Per-member Redis ACL users, provisioned by dealflow, and the credential a store
//! connects with.
//!
//! A member's user (`dealflow:<team>:<sub>`) may, and Redis enforces it whatever client
//! connects with it:
//! - read and write its own namespace, `dealflow:u:{<sub>}:*`, and nothing else of
//!   anyone's;
//! - read the team's policy and admin list (`%R~`: a write to them is NOPERM);
//! - append to the team's audit stream and read it: a selector that allows only XADD,
//!   reads and WATCH on that one key, so no member can delete, trim or rewrite entries;
//! - run no dangerous or admin command (no FLUSHALL, KEYS, ACL, CONFIG, …).
//!
//! An admin's user differs in one rule: the policy key is read-write. Making users is
//! for the Redis admin credential (the default user, or one with `+acl`); dealflow asks
//! for it only on the commands that provision (`team init|add-member|remove-member`).
//!
//! Known leak, left: SCAN is a read command that ACLs do not filter, so a member can
//! list the *names* of other members' keys (their `sub`s, action ids), not read them.

use super::RedisStore;
use crate::core::audit::{AuditEntry, NewAuditEntry};
use crate::store::{Result, StoreError};

/// A Redis ACL user and its password. Debug never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, ***)", self.user)
    }
}

/// The ACL user name of `sub` in `team`.
pub fn member_user(team: &str, sub: &str) -> String {
    format!("dealflow:{team}:{sub}")
}

/// The ACL SETUSER arguments (after the name and password) for a member, or an admin.
/// `team` and `sub` went through `clean_namespace`, so they hold no glob character.
pub fn member_rules(team: &str, sub: &str, admin: bool) -> Vec<String> {
    let t = |k: &str| RedisStore::team_key_of(team, k);
    let policy = if admin {
        format!("~{}", t("policy"))
    } else {
        format!("%R~{}", t("policy"))
    };
    vec![
        format!("~{}*", RedisStore::prefix_of(sub)),
        policy,
        format!("%R~{}", t("admins")),
        "resetchannels".into(),
        "+@all".into(),
        "-@dangerous".into(),
        "-@admin".into(),
        format!(
            "(~{} +xadd +xrange +xrevrange +xlen +xinfo|stream +watch +exists)",
            t("audit")
        ),
    ]
}

/// What `doctor` says about the Redis user a store connects as.
#[derive(Debug, Clone)]
pub struct AclReport {
    /// `ACL WHOAMI`.
    pub user: String,
    /// Whether that user reaches less than everything: no `~*`/`allkeys` and no
    /// `+@all` without `-@dangerous`. The default user of a server without ACLs does not.
    pub narrower: bool,
}

impl RedisStore {
    /// Creates (or resets, with a new password) the ACL user of member `sub`, an admin
    /// of the team too when `admin`, and audits it in the team's stream. Needs a store
    /// connected with the Redis admin credential, opened by a team admin. Returns the
    /// user and its password (shown once, to hand to the member).
    pub fn provision_member(
        &self,
        sub: &str,
        admin: bool,
        entry: NewAuditEntry,
    ) -> Result<(Credential, AuditEntry)> {
        let sub = super::clean_namespace(sub).map_err(StoreError::Permission)?;
        self.require_admin()?;
        let team = self.team()?.to_string();
        let user = member_user(&team, &sub);
        let password = hex::encode(rand::random::<[u8; 32]>());
        let rules = member_rules(&team, &sub, admin);
        self.with(|c| {
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg(&user)
                .arg("reset")
                .arg("on")
                .arg(format!(">{password}"))
                .arg(&rules)
                .query::<()>(c)
        })
        .map_err(|e| self.acl_refused(e))?;
        let mut entry = entry;
        if let serde_json::Value::Object(m) = &mut entry.detail {
            m.insert("member".into(), sub.clone().into());
            m.insert("acl_user".into(), user.clone().into());
            m.insert("admin".into(), admin.into());
        }
        let admins = Self::team_key_of(&team, "admins");
        let e = self.team_write_audited(entry, |pipe| {
            if admin {
                pipe.cmd("SADD").arg(&admins).arg(&sub).ignore();
            } else {
                pipe.cmd("SREM").arg(&admins).arg(&sub).ignore();
            }
        })?;
        Ok((Credential { user, password }, e))
    }

    /// Deletes member `sub`'s ACL user (Redis drops its connections) and takes them off
    /// the admin list; audited in the team's stream.
    pub fn revoke_member(&self, sub: &str, entry: NewAuditEntry) -> Result<(bool, AuditEntry)> {
        let sub = super::clean_namespace(sub).map_err(StoreError::Permission)?;
        self.require_admin()?;
        if sub == self.namespace {
            return Err(StoreError::Permission(
                "you cannot remove yourself: another admin removes you".into(),
            ));
        }
        let team = self.team()?.to_string();
        let user = member_user(&team, &sub);
        let deleted: u64 = self
            .with(|c| redis::cmd("ACL").arg("DELUSER").arg(&user).query(c))
            .map_err(|e| self.acl_refused(e))?;
        let mut entry = entry;
        if let serde_json::Value::Object(m) = &mut entry.detail {
            m.insert("member".into(), sub.clone().into());
            m.insert("acl_user".into(), user.into());
        }
        let admins = Self::team_key_of(&team, "admins");
        let e = self.team_write_audited(entry, |pipe| {
            pipe.cmd("SREM").arg(&admins).arg(&sub).ignore();
        })?;
        Ok((deleted > 0, e))
    }

    /// The ACL user this store connects as, and whether it is narrower than a user
    /// with every key and command.
    pub fn acl_report(&self) -> Result<AclReport> {
        let user: String = self.with(|c| redis::cmd("ACL").arg("WHOAMI").query(c))?;
        // A narrow user may not run ACL GETUSER on itself: that alone says it is narrow.
        let rules: redis::RedisResult<Vec<String>> = {
            let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut() {
                Some(c) => redis::cmd("ACL").arg("LIST").query(c),
                None => Ok(Vec::new()),
            }
        };
        let narrower = match rules {
            Err(_) => true,
            Ok(list) => list
                .iter()
                .find(|l| l.split(' ').nth(1) == Some(user.as_str()))
                .is_none_or(|l| {
                    let all_keys = l.split(' ').any(|w| w == "~*" || w == "allkeys");
                    let all_cmds = l.contains("+@all") && !l.contains("-@dangerous");
                    !(all_keys && all_cmds)
                }),
        };
        Ok(AclReport { user, narrower })
    }

    fn acl_refused(&self, e: StoreError) -> StoreError {
        if super::refused_by_acl(&e) {
            StoreError::Permission(format!(
                "Redis refused to manage ACL users with the credential in use: run it with the Redis admin's (`--redis-user NAME`, password on stdin) ({e})"
            ))
        } else {
            e
        }
    }
}
