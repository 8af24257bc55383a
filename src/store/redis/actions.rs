//! Actions in Redis: a hash per action read back into an [`Action`], and the scripted
//! compare-and-set inserts, transitions and edits.

use super::{RedisStore, json};
use crate::core::domain::{Action, ActionParams, ActionState};
use crate::store::{ActionFilter, ActionPage, Result, Store, StoreError, Transition};
use std::collections::BTreeMap;

impl RedisStore {
    pub(super) fn parse_action(&self, id: &str, m: BTreeMap<String, String>) -> Result<Action> {
        let field = |k: &str| {
            m.get(k)
                .ok_or_else(|| self.corrupt(format!("action {id}: missing {k}")))
        };
        let mut a: Action = serde_json::from_str(field("body")?)
            .map_err(|e| self.corrupt(format!("action {id}: {e}")))?;
        let state = field("state")?;
        a.state = ActionState::parse(state)
            .ok_or_else(|| self.corrupt(format!("action {id}: unknown state {state:?}")))?;
        a.version = field("version")?
            .parse()
            .map_err(|e| self.corrupt(format!("action {id}: version: {e}")))?;
        a.updated_at = field("updated_at")?
            .parse()
            .map_err(|e| self.corrupt(format!("action {id}: updated_at: {e}")))?;
        a.params = serde_json::from_str(field("params")?)
            .map_err(|e| self.corrupt(format!("action {id}: params: {e}")))?;
        a.outcome = m.get("outcome").cloned();
        a.evidence = m
            .get("evidence")
            .map(|e| serde_json::from_str(e))
            .transpose()
            .map_err(|e| self.corrupt(format!("action {id}: evidence: {e}")))?;
        Ok(a)
    }

    /// The ids of the actions in `states` (empty: all), from their state fields alone.
    pub(super) fn ids_in(&self, states: &[ActionState]) -> Result<Vec<String>> {
        let set = self.key("actions");
        let ids: Vec<String> = self.with(|c| redis::cmd("SMEMBERS").arg(&set).query(c))?;
        if ids.is_empty() {
            return Ok(ids);
        }
        let found: Vec<Option<String>> = self.with(|c| {
            let mut p = redis::pipe();
            for id in &ids {
                p.cmd("HGET")
                    .arg(self.key(&format!("action:{id}")))
                    .arg("state");
            }
            p.query(c)
        })?;
        Ok(ids
            .into_iter()
            .zip(found)
            .filter_map(|(id, s)| {
                let s = ActionState::parse(&s?)?;
                (states.is_empty() || states.contains(&s)).then_some(id)
            })
            .collect())
    }

    pub(super) fn fetch_action(&self, id: &str) -> Result<Option<Action>> {
        let key = self.key(&format!("action:{id}"));
        let m: BTreeMap<String, String> =
            self.with(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        if m.is_empty() {
            return Ok(None);
        }
        self.parse_action(id, m).map(Some)
    }

    pub(super) fn conflict(
        &self,
        id: &str,
        expected: ActionState,
        version: i64,
        r: &[String],
    ) -> StoreError {
        match (
            r.get(1).and_then(|s| ActionState::parse(s)),
            r.get(2).and_then(|v| v.parse().ok()),
        ) {
            (Some(found), Some(found_version)) => StoreError::Conflict {
                id: id.to_string(),
                expected,
                version,
                found,
                found_version,
            },
            _ => self.corrupt(format!("action {id}: unreadable state or version")),
        }
    }

    pub(super) fn insert_action_hash(&self, a: &Action) -> Result<()> {
        let ok: i64 = self.with(|c| {
            self.insert
                .key(self.key(&format!("action:{}", a.id)))
                .key(self.key("actions"))
                .arg(a.state.as_str())
                .arg(a.version)
                .arg(a.updated_at)
                .arg(json(&a.params))
                .arg(json(a))
                .arg(a.outcome.clone().unwrap_or_default())
                .arg(a.evidence.as_ref().map(json).unwrap_or_default())
                .arg(&a.id)
                .invoke(c)
        })?;
        if ok == 1 {
            Ok(())
        } else {
            Err(self.err(format!("action {} already exists", a.id)))
        }
    }

    pub(super) fn read_action_hash(&self, id: &str) -> Result<Action> {
        self.fetch_action(id)?
            .ok_or_else(|| StoreError::NotFound { id: id.to_string() })
    }

    pub(super) fn read_action_hashes(&self, f: &ActionFilter) -> Result<Vec<Action>> {
        let set = self.key("actions");
        let ids: Vec<String> = self.with(|c| redis::cmd("SMEMBERS").arg(&set).query(c))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let maps: Vec<BTreeMap<String, String>> = self.with(|c| {
            let mut p = redis::pipe();
            for id in &ids {
                p.cmd("HGETALL").arg(self.key(&format!("action:{id}")));
            }
            p.query(c)
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, m) in ids.iter().zip(maps) {
            if m.is_empty() {
                continue;
            }
            let a = self.parse_action(id, m)?;
            if f.states.is_empty() || f.states.contains(&a.state) {
                out.push(a);
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        if let Some(limit) = f.limit {
            out.truncate(limit);
        }
        Ok(out)
    }

    /// Reads every action's state (one pipelined HGET each) and the full hash only of
    /// those in `q.states`: asking for the finished window skips the pending bodies.
    pub(super) fn read_action_page(&self, q: &ActionPage) -> Result<Vec<Action>> {
        let ids = self.ids_in(&q.states)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let maps: Vec<BTreeMap<String, String>> = self.with(|c| {
            let mut p = redis::pipe();
            for id in &ids {
                p.cmd("HGETALL").arg(self.key(&format!("action:{id}")));
            }
            p.query(c)
        })?;
        let mut out = Vec::new();
        for (id, m) in ids.iter().zip(maps) {
            if m.is_empty() {
                continue;
            }
            let a = self.parse_action(id, m)?;
            if q.selects(&a) {
                out.push(a);
            }
        }
        out.sort_by(|a, b| (b.updated_at, &b.id).cmp(&(a.updated_at, &a.id)));
        out.truncate(q.limit);
        Ok(out)
    }

    pub(super) fn count_action_hashes(&self, states: &[ActionState]) -> Result<usize> {
        Ok(self.ids_in(states)?.len())
    }

    pub(super) fn transition_hash(&self, id: &str, t: &Transition) -> Result<Action> {
        if !t.from.can_go_to(t.to) {
            return Err(StoreError::InvalidTransition {
                id: id.to_string(),
                from: t.from,
                to: t.to,
            });
        }
        // Going back to proposed drops any consent: it covered the old moment.
        let (mode, evidence) = match &t.evidence {
            Some(e) => ("set", json(e)),
            None if t.to == ActionState::Proposed => ("clear", String::new()),
            None => ("keep", String::new()),
        };
        let r: Vec<String> = self.with(|c| {
            self.transition
                .key(self.key(&format!("action:{id}")))
                .arg(t.from.as_str())
                .arg(t.version)
                .arg(t.to.as_str())
                .arg(t.at)
                .arg(if t.outcome.is_some() { "1" } else { "0" })
                .arg(t.outcome.clone().unwrap_or_default())
                .arg(mode)
                .arg(evidence)
                .invoke(c)
        })?;
        match r.first().map(String::as_str) {
            Some("ok") => self.get_action(id),
            Some("missing") => Err(StoreError::NotFound { id: id.to_string() }),
            _ => Err(self.conflict(id, t.from, t.version, &r)),
        }
    }

    pub(super) fn edit_action_hash(
        &self,
        id: &str,
        version: i64,
        p: &ActionParams,
        at: i64,
    ) -> Result<Action> {
        let cur = self.get_action(id)?;
        if !matches!(
            cur.state,
            ActionState::Proposed | ActionState::AwaitingConsent | ActionState::Approved
        ) {
            return Err(StoreError::NotEditable {
                id: id.to_string(),
                state: cur.state,
            });
        }
        if p.kind() != cur.kind() {
            return Err(self.corrupt(format!(
                "an edit cannot change the kind of {id} from {} to {}",
                cur.kind(),
                p.kind()
            )));
        }
        let r: Vec<String> = self.with(|c| {
            self.edit
                .key(self.key(&format!("action:{id}")))
                .arg(version)
                .arg(json(p))
                .arg(at)
                .invoke(c)
        })?;
        match r.first().map(String::as_str) {
            Some("ok") => self.get_action(id),
            Some("missing") => Err(StoreError::NotFound { id: id.to_string() }),
            _ => Err(self.conflict(id, cur.state, version, &r)),
        }
    }
}
