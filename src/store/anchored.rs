//! A store whose every audit append is reported to an [`AuditAnchor`] (the keyring
//! checkpoint), so the chain is anchored outside the store it lives in.

use super::{ActionFilter, ActionPage, AuditQuery, Lease, Result, Store, Transition};
use crate::core::audit::{AuditEntry, ChainBreak, NewAuditEntry};
use crate::core::domain::{Action, ActionParams, ActionState, Contact, Deal, Millis};
use crate::core::permissions::{PermissionChange, Permissions};
use std::sync::Arc;

/// Told of each entry appended, after it is committed.
pub trait AuditAnchor: Send + Sync {
    fn appended(&self, store: &dyn Store, entry: &AuditEntry);
}

pub struct Anchored {
    inner: Arc<dyn Store>,
    anchor: Arc<dyn AuditAnchor>,
}

impl Anchored {
    pub fn new(inner: Arc<dyn Store>, anchor: Arc<dyn AuditAnchor>) -> Anchored {
        Anchored { inner, anchor }
    }
}

impl Store for Anchored {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn change_marker(&self) -> Option<u64> {
        self.inner.change_marker()
    }
    fn upsert_deal(&self, deal: &Deal) -> Result<()> {
        self.inner.upsert_deal(deal)
    }
    fn list_deals(&self) -> Result<Vec<Deal>> {
        self.inner.list_deals()
    }
    fn get_deal(&self, id: &str) -> Result<Option<Deal>> {
        self.inner.get_deal(id)
    }
    fn upsert_contact(&self, contact: &Contact) -> Result<()> {
        self.inner.upsert_contact(contact)
    }
    fn list_contacts(&self) -> Result<Vec<Contact>> {
        self.inner.list_contacts()
    }
    fn upsert_many(&self, deals: &[Deal], contacts: &[Contact]) -> Result<()> {
        self.inner.upsert_many(deals, contacts)
    }
    fn insert_action(&self, action: &Action) -> Result<()> {
        self.inner.insert_action(action)
    }
    fn get_action(&self, id: &str) -> Result<Action> {
        self.inner.get_action(id)
    }
    fn list_actions(&self, filter: &ActionFilter) -> Result<Vec<Action>> {
        self.inner.list_actions(filter)
    }
    fn action_page(&self, q: &ActionPage) -> Result<Vec<Action>> {
        self.inner.action_page(q)
    }
    fn count_actions(&self, states: &[ActionState]) -> Result<usize> {
        self.inner.count_actions(states)
    }
    fn transition(&self, id: &str, t: &Transition) -> Result<Action> {
        self.inner.transition(id, t)
    }
    fn edit_action(
        &self,
        id: &str,
        version: i64,
        params: &ActionParams,
        at: Millis,
    ) -> Result<Action> {
        self.inner.edit_action(id, version, params, at)
    }
    fn mark_interrupted(&self, at: Millis) -> Result<Vec<Action>> {
        self.inner.mark_interrupted(at)
    }
    fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<std::result::Result<(), Lease>> {
        self.inner.take_lease(name, holder, now, until)
    }
    fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.inner.release_lease(name, holder)
    }
    fn leases(&self, now: Millis) -> Result<Vec<Lease>> {
        self.inner.leases(now)
    }
    fn load_permissions(&self) -> Result<Permissions> {
        self.inner.load_permissions()
    }
    fn change_permissions(
        &self,
        change: &PermissionChange,
        audit: NewAuditEntry,
    ) -> Result<(Permissions, AuditEntry)> {
        let (perms, entry) = self.inner.change_permissions(change, audit)?;
        self.anchor.appended(self.inner.as_ref(), &entry);
        Ok((perms, entry))
    }
    fn append_audit(&self, entry: NewAuditEntry) -> Result<AuditEntry> {
        let entry = self.inner.append_audit(entry)?;
        self.anchor.appended(self.inner.as_ref(), &entry);
        Ok(entry)
    }
    fn append_team_audit(&self, entry: NewAuditEntry) -> Result<Option<AuditEntry>> {
        self.inner.append_team_audit(entry)
    }
    fn audit_page(&self, after: i64, limit: usize) -> Result<Vec<AuditEntry>> {
        self.inner.audit_page(after, limit)
    }
    fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.inner.audit_query(q)
    }
    fn load_cache(&self, name: &str) -> Result<Option<String>> {
        self.inner.load_cache(name)
    }
    fn save_cache(&self, name: &str, body: &str) -> Result<()> {
        self.inner.save_cache(name, body)
    }
    fn audit_head(&self) -> Result<(i64, String)> {
        self.inner.audit_head()
    }
    fn audit_about(&self, action_id: &str, since: Millis) -> Result<Vec<AuditEntry>> {
        self.inner.audit_about(action_id, since)
    }
    fn audit_events_since(&self, event: &str, since: Millis) -> Result<Vec<AuditEntry>> {
        self.inner.audit_events_since(event, since)
    }
    fn verify_audit(&self) -> Result<std::result::Result<i64, ChainBreak>> {
        self.inner.verify_audit()
    }
    fn verify_audit_progress(
        &self,
        progress: &dyn Fn(i64),
    ) -> Result<std::result::Result<i64, ChainBreak>> {
        self.inner.verify_audit_progress(progress)
    }
}
