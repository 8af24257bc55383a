//! What dealflow's records say about how it runs: where the deals live, how the last
//! device push was proven, and the background service's status file.

use super::{Doctor, when};
use crate::core::text::line;
use crate::store::Store;

impl Doctor {
    /// Where the deals live. Salesforce is not asked here (that needs a Token Vault
    /// exchange, which changes nothing but costs a call): `dealflow status` reads it.
    pub(super) fn crm(&mut self, c: &crate::config::Config, sandbox: bool) {
        use crate::core::domain::CrmProvider;
        let sf = &c.raw.crm.salesforce;
        match c.crm {
            CrmProvider::Local => self.ok("crm", "dealflow's own store (crm.provider = \"local\")"),
            CrmProvider::Salesforce if sandbox => self.ok(
                "crm",
                "Salesforce: the sandbox's emulated org (`dealflow sandbox salesforce` shows it)",
            ),
            CrmProvider::Salesforce => self.ok(
                "crm",
                format!(
                    "Salesforce through Token Vault's salesforce connection; instance {}; creates keyed by {}{}",
                    if sf.instance_url.is_empty() {
                        format!("from the identity service at {}", sf.login_url)
                    } else {
                        sf.instance_url.clone()
                    },
                    sf.external_id_field,
                    if c.crm_stages.is_empty() {
                        String::new()
                    } else {
                        format!("; {} stage name(s) of your own", c.crm_stages.len())
                    }
                ),
            ),
        }
    }

    /// How the last device push was proven: by the actions the token carries back
    /// (RAR), or by the batch hash in our own log because the tenant refused or ignored
    /// them. Read from the log; doctor never pushes to a phone to find out.
    pub(super) fn device_consent(&mut self, store: &dyn Store) {
        use crate::runtime::batch::PUSHES_SUBJECT;
        use crate::runtime::rar::RAR_TYPE;
        let since = crate::wall::now_ms() - 30 * 86_400_000;
        let last = match store.audit_about(PUSHES_SUBJECT, since) {
            Ok(entries) => entries.into_iter().next(),
            Err(e) => return self.fail("device consent", e),
        };
        let Some(e) = last else {
            return self.ok(
                "device consent",
                format!(
                    "no push in 30 days; the first says whether the tenant takes each action as an authorization_details entry (type {RAR_TYPE})"
                ),
            );
        };
        let d = &e.detail;
        let why = d["details_refused"]
            .as_str()
            .or(d["details_ignored"].as_str())
            .map(line);
        match (d["proof"].as_str(), why) {
            (Some("authorization_details"), _) => self.ok(
                "device consent",
                format!(
                    "each pushed action is an authorization_details entry the token carries back (RFC 9396); last push {}",
                    when(e.ts)
                ),
            ),
            (_, Some(why)) => self.todo(
                "device consent",
                format!(
                    "hash-bound batches (the phone shows a count, and only our log proves what was approved): {why}. Register the type {RAR_TYPE} on the dealflow API (docs/auth.md)"
                ),
            ),
            _ => self.ok(
                "device consent",
                format!("hash-bound batch, last push {}", when(e.ts)),
            ),
        }
    }

    /// The background service, as its status file says (reading it changes nothing).
    /// Not running is not a problem; one that died without stopping is.
    pub(super) fn service(&mut self, sandbox: bool) {
        use crate::runtime::service::{Liveness, ServiceStatus, status_path};
        let Some(s) = status_path(sandbox).and_then(|p| ServiceStatus::read(&p)) else {
            self.ok(
                "service",
                "not running (`dealflow service install` runs the agent with no terminal open)",
            );
            return;
        };
        match s.liveness() {
            Liveness::Running => self.ok(
                "service",
                format!(
                    "running, pid {}; last proposed {}",
                    s.pid,
                    s.last_proposed.map_or_else(|| "nothing yet".into(), when)
                ),
            ),
            Liveness::Stopped => self.ok("service", "not running (stopped cleanly)"),
            Liveness::Died => self.fail(
                "service",
                format!(
                    "pid {} ended without stopping (killed or crashed): `journalctl --user -u dealflow` or the log file says why",
                    s.pid
                ),
            ),
        }
    }
}
