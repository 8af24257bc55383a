//! Actions in SQLite: rows to and from [`Action`], and the compare-and-set
//! transitions and edits, each a single conditional UPDATE.

use super::{SqliteStore, json};
use crate::core::domain::{Action, ActionParams, ActionState, Surface};
use crate::store::{ActionFilter, ActionPage, Result, StoreError, Transition};
use rusqlite::{Connection, params};

const ACTION_COLS: &str = "id, state, version, surface, confidence, title, justification, params, original, evidence, outcome, created_at, updated_at";

impl SqliteStore {
    pub(super) fn row_to_action(&self, r: &rusqlite::Row<'_>) -> Result<Action> {
        let get = |i: usize| -> Result<String> { r.get::<_, String>(i).map_err(|e| self.err(e)) };
        let id = get(0)?;
        let state_s = get(1)?;
        let state = ActionState::parse(&state_s)
            .ok_or_else(|| self.corrupt(format!("action {id}: unknown state {state_s:?}")))?;
        let surface_s = get(3)?;
        let surface = Surface::parse(&surface_s)
            .ok_or_else(|| self.corrupt(format!("action {id}: unknown surface {surface_s:?}")))?;
        let params: ActionParams = serde_json::from_str(&get(7)?)
            .map_err(|e| self.corrupt(format!("action {id}: params: {e}")))?;
        let original: ActionParams = serde_json::from_str(&get(8)?)
            .map_err(|e| self.corrupt(format!("action {id}: original: {e}")))?;
        let evidence: Option<String> = r.get(9).map_err(|e| self.err(e))?;
        let evidence = evidence
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| self.corrupt(format!("action {id}: evidence: {e}")))?;
        Ok(Action {
            id,
            state,
            version: r.get(2).map_err(|e| self.err(e))?,
            surface,
            confidence: r.get(4).map_err(|e| self.err(e))?,
            title: get(5)?,
            justification: get(6)?,
            params,
            original,
            evidence,
            outcome: r.get(10).map_err(|e| self.err(e))?,
            created_at: r.get(11).map_err(|e| self.err(e))?,
            updated_at: r.get(12).map_err(|e| self.err(e))?,
        })
    }

    pub(super) fn fetch_action(&self, conn: &Connection, id: &str) -> Result<Option<Action>> {
        let mut st = conn
            .prepare_cached(&format!("SELECT {ACTION_COLS} FROM actions WHERE id = ?1"))
            .map_err(|e| self.err(e))?;
        let mut rows = st.query(params![id]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            Some(r) => Ok(Some(self.row_to_action(r)?)),
            None => Ok(None),
        }
    }

    pub(super) fn insert_action_row(&self, a: &Action) -> Result<()> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO actions (kind, {ACTION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
                params![
                    a.kind().as_str(),
                    a.id,
                    a.state.as_str(),
                    a.version,
                    a.surface.as_str(),
                    a.confidence,
                    a.title,
                    a.justification,
                    json(&a.params),
                    json(&a.original),
                    a.evidence.as_ref().map(json),
                    a.outcome,
                    a.created_at,
                    a.updated_at
                ],
            )
            .map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    pub(super) fn read_action_row(&self, id: &str) -> Result<Action> {
        self.with(|c| {
            self.fetch_action(c, id)?
                .ok_or_else(|| StoreError::NotFound { id: id.to_string() })
        })
    }

    pub(super) fn read_action_rows(&self, f: &ActionFilter) -> Result<Vec<Action>> {
        self.with(|c| {
            let states: Vec<&str> = f.states.iter().map(|s| s.as_str()).collect();
            let filter = if states.is_empty() {
                String::new()
            } else {
                format!(" WHERE state IN ({})", vec!["?"; states.len()].join(", "))
            };
            const ORDER: &str = " ORDER BY created_at DESC, id DESC";
            // A page: the newest rows are found in the index (state, created_at, id) and
            // only they are read whole; sorting whole rows to keep 200 of 10,000 cost the
            // TUI's first frame ~30 ms.
            let sql = match f.limit {
                Some(limit) => format!(
                    "SELECT {ACTION_COLS} FROM actions WHERE rowid IN \
                     (SELECT rowid FROM actions{filter}{ORDER} LIMIT {limit}){ORDER}"
                ),
                None => format!("SELECT {ACTION_COLS} FROM actions{filter}{ORDER}"),
            };
            let mut st = c.prepare(&sql).map_err(|e| self.err(e))?;
            let mut rows = st
                .query(rusqlite::params_from_iter(states.iter()))
                .map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                out.push(self.row_to_action(r)?);
            }
            Ok(out)
        })
    }

    pub(super) fn read_action_page(&self, q: &ActionPage) -> Result<Vec<Action>> {
        self.with(|c| {
            let states: Vec<&str> = q.states.iter().map(|s| s.as_str()).collect();
            let mut args: Vec<rusqlite::types::Value> =
                states.iter().map(|s| s.to_string().into()).collect();
            let mut sql = format!("SELECT {ACTION_COLS} FROM actions WHERE 1");
            if !states.is_empty() {
                let marks = vec!["?"; states.len()].join(", ");
                sql.push_str(&format!(" AND state IN ({marks})"));
            }
            if let Some((at, id)) = &q.before {
                sql.push_str(" AND (updated_at < ? OR (updated_at = ? AND id < ?))");
                args.extend([(*at).into(), (*at).into(), id.clone().into()]);
            }
            sql.push_str(&format!(
                " ORDER BY updated_at DESC, id DESC LIMIT {}",
                q.limit
            ));
            let mut st = c.prepare(&sql).map_err(|e| self.err(e))?;
            let mut rows = st
                .query(rusqlite::params_from_iter(args))
                .map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                out.push(self.row_to_action(r)?);
            }
            Ok(out)
        })
    }

    pub(super) fn count_action_rows(&self, states: &[ActionState]) -> Result<usize> {
        self.with(|c| {
            let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
            let mut sql = "SELECT COUNT(*) FROM actions".to_string();
            if !names.is_empty() {
                let marks = vec!["?"; names.len()].join(", ");
                sql.push_str(&format!(" WHERE state IN ({marks})"));
            }
            let n: i64 = c
                .query_row(&sql, rusqlite::params_from_iter(names.iter()), |r| r.get(0))
                .map_err(|e| self.err(e))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    pub(super) fn transition_row(&self, id: &str, t: &Transition) -> Result<Action> {
        if !t.from.can_go_to(t.to) {
            return Err(StoreError::InvalidTransition {
                id: id.to_string(),
                from: t.from,
                to: t.to,
            });
        }
        self.with(|c| {
            // Going back to proposed drops any consent: it covered the old moment.
            let evidence = t.evidence.as_ref().map(json);
            let keep_evidence = t.evidence.is_none() && t.to != ActionState::Proposed;
            let n = c
                .execute(
                    "UPDATE actions SET state = ?1, version = version + 1, updated_at = ?2,
                       outcome = COALESCE(?3, outcome),
                       evidence = CASE WHEN ?4 THEN evidence ELSE ?5 END
                     WHERE id = ?6 AND state = ?7 AND version = ?8",
                    params![
                        t.to.as_str(),
                        t.at,
                        t.outcome,
                        keep_evidence,
                        evidence,
                        id,
                        t.from.as_str(),
                        t.version
                    ],
                )
                .map_err(|e| self.err(e))?;
            let now = self
                .fetch_action(c, id)?
                .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
            if n == 1 {
                Ok(now)
            } else {
                Err(StoreError::Conflict {
                    id: id.to_string(),
                    expected: t.from,
                    version: t.version,
                    found: now.state,
                    found_version: now.version,
                })
            }
        })
    }

    pub(super) fn edit_action_row(
        &self,
        id: &str,
        version: i64,
        p: &ActionParams,
        at: i64,
    ) -> Result<Action> {
        self.with(|c| {
            let cur = self
                .fetch_action(c, id)?
                .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
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
                return Err(StoreError::Corrupt {
                    path: self.path.display().to_string(),
                    message: format!(
                        "an edit cannot change the kind of {id} from {} to {}",
                        cur.kind(),
                        p.kind()
                    ),
                });
            }
            let n = c
                .execute(
                    "UPDATE actions SET params = ?1, state = 'proposed', evidence = NULL,
                       version = version + 1, updated_at = ?2
                     WHERE id = ?3 AND version = ?4 AND state IN ('proposed', 'awaiting_consent', 'approved')",
                    params![json(p), at, id, version],
                )
                .map_err(|e| self.err(e))?;
            let now = self
                .fetch_action(c, id)?
                .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
            if n == 1 {
                Ok(now)
            } else {
                Err(StoreError::Conflict {
                    id: id.to_string(),
                    expected: cur.state,
                    version,
                    found: now.state,
                    found_version: now.version,
                })
            }
        })
    }
}
