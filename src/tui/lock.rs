//! The idle lock (`ui.idle_lock`): on a shared box a rep walks away from an SSH session
//! with drafts, deals and the approval keys on screen. After the configured idle time
//! the screen shows nothing but the lock; keys do nothing but ask to unlock. Signed in,
//! unlocking takes a yes on the user's phone (the same CIBA channel that approves MCP
//! writes), so the person at the keyboard must also hold the device. Locks and unlocks
//! are audited with the Unix user and SSH origin.

use super::msg::Effect;
use crate::core::domain::Millis;
use crate::tui::msg::{PipelineEffect, StoreEffect};

#[derive(Debug, Clone, Default)]
pub struct Lock {
    /// Idle time before locking; `None`: never.
    pub idle_ms: Option<Millis>,
    pub last_input: Millis,
    /// `Some(when)` while locked.
    pub locked_at: Option<Millis>,
    /// An unlock request is out (on the phone); Enter does not send another.
    pub asking: bool,
    /// The last word on unlocking (asked, denied, expired…), shown on the lock screen.
    pub note: Option<String>,
}

impl Lock {
    pub fn is_locked(&self) -> bool {
        self.locked_at.is_some()
    }

    /// Locks if the idle time has passed; returns the audit effect for it.
    pub fn check_idle(&mut self, now: Millis) -> Option<Effect> {
        let idle = self.idle_ms?;
        if self.is_locked() || now - self.last_input < idle {
            return None;
        }
        self.locked_at = Some(now);
        self.asking = false;
        self.note = None;
        Some(Effect::Store(StoreEffect::AuditSession {
            event: "session.locked".into(),
            outcome: "ok".into(),
            detail: serde_json::json!({ "idle_ms": now - self.last_input }),
        }))
    }

    /// Enter on the lock screen: one request at a time.
    pub fn ask(&mut self) -> Vec<Effect> {
        if self.asking {
            return vec![];
        }
        self.asking = true;
        self.note = Some("unlock requested: approve it on your phone".into());
        vec![Effect::Pipeline(PipelineEffect::RequestUnlock)]
    }

    /// The answer to [`PipelineEffect::RequestUnlock`]: `Ok(how)` unlocks.
    pub fn answer(&mut self, result: Result<String, String>, now: Millis) -> Vec<Effect> {
        self.asking = false;
        if !self.is_locked() {
            return vec![];
        }
        match result {
            Ok(how) => {
                self.locked_at = None;
                self.last_input = now;
                self.note = None;
                vec![Effect::Store(StoreEffect::AuditSession {
                    event: "session.unlocked".into(),
                    outcome: "ok".into(),
                    detail: serde_json::json!({ "by": how }),
                })]
            }
            Err(why) => {
                self.note = Some(format!("still locked: {why}"));
                vec![Effect::Store(StoreEffect::AuditSession {
                    event: "session.unlock_refused".into(),
                    outcome: "denied".into(),
                    detail: serde_json::json!({ "why": why }),
                })]
            }
        }
    }
}
