//! Actions tab state: the queue with the gate each action faces, filter and saved
//! views, marks and ranges, and the words the confirmation prompts show. Pure: no IO.

use crate::core::consent::{Decision, Gate};
use crate::core::domain::{Action, ActionState, Millis};
use std::collections::BTreeSet;

pub use super::confirm::{BulkPlan, bulk_plan, confidence_bar, what_will_happen};

/// One queue row: the action and the gate it faces under the loaded permissions.
#[derive(Debug, Clone)]
pub struct Row {
    pub action: Action,
    pub decision: Decision,
}

/// Saved views (gh-dash style), cycled with `s` or chosen in the palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedView {
    /// Everything not finished (proposed, awaiting consent, approved, executing…).
    Queue,
    /// Pending suggestions with confidence below 0.75.
    LowConfidence,
    /// Pending suggestions moving more than $50K.
    Over50k,
    /// Waiting for (or gated on) approval on the phone.
    AwaitingPhone,
    /// Everything, finished included.
    All,
}

impl SavedView {
    pub const ALL: [SavedView; 5] = [
        SavedView::Queue,
        SavedView::LowConfidence,
        SavedView::Over50k,
        SavedView::AwaitingPhone,
        SavedView::All,
    ];
    pub fn name(self) -> &'static str {
        match self {
            SavedView::Queue => "queue",
            SavedView::LowConfidence => "low-confidence",
            SavedView::Over50k => "over-50k",
            SavedView::AwaitingPhone => "awaiting-phone",
            SavedView::All => "all",
        }
    }
    pub fn next(self) -> SavedView {
        let i = SavedView::ALL.iter().position(|v| *v == self).unwrap_or(0);
        SavedView::ALL[(i + 1) % SavedView::ALL.len()]
    }
    fn admits(self, r: &Row) -> bool {
        let pending = is_pending(r.action.state);
        match self {
            SavedView::Queue => !r.action.state.is_terminal(),
            SavedView::LowConfidence => pending && r.action.confidence < 0.75,
            SavedView::Over50k => {
                pending
                    && r.action
                        .params
                        .amount_cents()
                        .is_some_and(|c| c > 5_000_000)
            }
            SavedView::AwaitingPhone => {
                r.action.state == ActionState::AwaitingConsent
                    || (pending && matches!(r.decision.gate(), Gate::Ciba { .. }))
            }
            SavedView::All => true,
        }
    }
}

/// How many finished actions a reload holds, and how many more each "load more" adds:
/// every pending action is always held, the finished ones (years of them) a page at a
/// time, most recently finished first.
pub const FINISHED_PAGE: usize = 200;

/// How many pending actions the first frame shows before the whole queue is read: more
/// than a tall terminal's queue pane holds, few enough to read and gate in about a
/// millisecond (200 took 2.6 ms of the first frame's 12).
pub const FIRST_PAGE: usize = 80;

/// The states an action never leaves: held a window at a time.
pub fn finished_states() -> Vec<ActionState> {
    ActionState::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect()
}

/// Every state an action is still pending in (the queue holds all of these).
pub fn pending_states() -> Vec<ActionState> {
    ActionState::ALL
        .into_iter()
        .filter(|s| !s.is_terminal())
        .collect()
}

/// Where a finished action sits in the store's page order (`Store::action_page`).
fn finished_key(a: &Action) -> (Millis, &str) {
    (a.updated_at, a.id.as_str())
}

pub fn is_pending(s: ActionState) -> bool {
    matches!(s, ActionState::Proposed | ActionState::AwaitingConsent)
}

#[derive(Debug, Clone)]
pub struct ActionsTab {
    pub rows: Vec<Row>,
    /// Indices into `rows` that pass the view and filter, in display order.
    pub visible: Vec<usize>,
    pub cursor: usize,
    pub filter: String,
    pub view: SavedView,
    pub marks: BTreeSet<String>,
    pub range_anchor: Option<usize>,
    pub loaded: bool,
    /// The detail pane's scroll (J/K).
    pub detail: super::pane_scroll::PaneScroll,
    /// How many finished actions the store holds (`None`: not counted yet); `rows`
    /// holds every pending one but only a window of these.
    pub finished_total: Option<usize>,
    /// An older page of finished actions is on its way (asked below this key).
    pub loading_older: Option<(Millis, String)>,
    /// Only the first frame's page is loaded; the whole queue is on its way.
    pub partial: bool,
}

impl Default for ActionsTab {
    fn default() -> Self {
        ActionsTab {
            rows: Vec::new(),
            visible: Vec::new(),
            cursor: 0,
            filter: String::new(),
            view: SavedView::Queue,
            marks: BTreeSet::new(),
            range_anchor: None,
            loaded: false,
            detail: Default::default(),
            finished_total: None,
            loading_older: None,
            partial: false,
        }
    }
}

impl ActionsTab {
    /// Scrolls the detail pane by `by` lines (negative: up), within what it holds.
    pub fn scroll_detail(&mut self, by: i32) {
        if let Some(id) = self.current().map(|r| r.action.id.clone()) {
            self.detail.scroll(&id, by);
        }
    }

    /// Loads the queue with the gate each action faces, as the runtime decided it from
    /// the store's facts (`runtime::facts::FactSource`), the same path approval takes.
    ///
    /// A reload brings the newest [`FINISHED_PAGE`] finished actions; older ones loaded
    /// since ("load more") are kept when the page reaches down to them (finished actions
    /// never change, and new ones only arrive on top, so the window stays contiguous).
    pub fn load(&mut self, gated: Vec<(Action, Decision)>) {
        let keep = self.current().map(|r| r.action.id.clone());
        let mut rows: Vec<Row> = gated
            .into_iter()
            .map(|(action, decision)| Row { action, decision })
            .collect();
        let page: Vec<&Action> = rows
            .iter()
            .map(|r| &r.action)
            .filter(|a| a.state.is_terminal())
            .collect();
        let held_newest = self.finished().map(finished_key).max();
        let older: Vec<Row> = match (page.iter().map(|a| finished_key(a)).min(), held_newest) {
            (Some(oldest), Some(newest)) if page.len() >= FINISHED_PAGE && oldest <= newest => {
                let ids: BTreeSet<&str> = rows.iter().map(|r| r.action.id.as_str()).collect();
                self.rows
                    .iter()
                    .filter(|r| r.action.state.is_terminal())
                    .filter(|r| finished_key(&r.action) < oldest)
                    .filter(|r| !ids.contains(r.action.id.as_str()))
                    .cloned()
                    .collect()
            }
            _ => Vec::new(),
        };
        if !older.is_empty() {
            rows.extend(older);
            sort_rows(&mut rows);
        }
        self.rows = rows;
        let live: BTreeSet<&str> = self
            .rows
            .iter()
            .filter(|r| is_pending(r.action.state))
            .map(|r| r.action.id.as_str())
            .collect();
        self.marks.retain(|id| live.contains(id.as_str()));
        self.loaded = true;
        self.refilter();
        if let Some(id) = keep
            && let Some(pos) = self
                .visible
                .iter()
                .position(|&i| self.rows[i].action.id == id)
        {
            self.cursor = pos;
        }
    }

    /// Adds an older page of finished actions (`Msg::OlderActionsLoaded`), if it is the
    /// one last asked for; the cursor stays on its row.
    pub fn load_older(&mut self, gated: Vec<(Action, Decision)>, asked: &(Millis, String)) {
        if self.loading_older.as_ref() != Some(asked) {
            return;
        }
        self.loading_older = None;
        let keep = self.current().map(|r| r.action.id.clone());
        let held: BTreeSet<String> = self.rows.iter().map(|r| r.action.id.clone()).collect();
        self.rows.extend(
            gated
                .into_iter()
                .filter(|(a, _)| !held.contains(&a.id))
                .map(|(action, decision)| Row { action, decision }),
        );
        sort_rows(&mut self.rows);
        self.refilter();
        if let Some(id) = keep
            && let Some(pos) = self
                .visible
                .iter()
                .position(|&i| self.rows[i].action.id == id)
        {
            self.cursor = pos;
        }
    }

    fn finished(&self) -> impl Iterator<Item = &Action> {
        self.rows
            .iter()
            .map(|r| &r.action)
            .filter(|a| a.state.is_terminal())
    }

    /// How many finished actions `rows` holds.
    pub fn finished_held(&self) -> usize {
        self.finished().count()
    }

    /// How many finished actions the store has that `rows` does not hold (0 until counted).
    pub fn finished_not_held(&self) -> usize {
        self.finished_total
            .unwrap_or(0)
            .saturating_sub(self.finished_held())
    }

    /// Whether the view shows finished actions at all (only then is there more to load).
    pub fn shows_finished(&self) -> bool {
        self.view == SavedView::All
    }

    /// The next page of finished actions to ask for, when the cursor is near the end of
    /// a view that shows them and the store has more: at most one request at a time.
    pub fn more(&mut self) -> Option<(Millis, String)> {
        const MARGIN: usize = 10;
        if !self.shows_finished()
            || self.finished_not_held() == 0
            || self.loading_older.is_some()
            || self.cursor + MARGIN < self.visible.len()
        {
            return None;
        }
        let oldest = self
            .finished()
            .map(|a| (a.updated_at, a.id.clone()))
            .min()?;
        self.loading_older = Some(oldest.clone());
        Some(oldest)
    }

    /// Recomputes `visible` (O(n), on load and filter changes, never per frame).
    pub fn refilter(&mut self) {
        let needle = self.filter.to_lowercase();
        self.visible = self
            .rows
            .iter()
            .enumerate()
            .filter(|(_, r)| self.view.admits(r))
            .filter(|(_, r)| needle.is_empty() || haystack(&r.action).contains(&needle))
            .map(|(i, _)| i)
            .collect();
        if self.cursor >= self.visible.len() {
            self.cursor = self.visible.len().saturating_sub(1);
        }
    }

    pub fn current(&self) -> Option<&Row> {
        self.visible
            .get(self.cursor)
            .and_then(|&i| self.rows.get(i))
    }

    pub fn row_by_id(&self, id: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.action.id == id)
    }

    pub fn pending_count(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| is_pending(r.action.state))
            .count()
    }

    pub fn pending_ids(&self) -> BTreeSet<String> {
        self.rows
            .iter()
            .filter(|r| is_pending(r.action.state))
            .map(|r| r.action.id.clone())
            .collect()
    }

    /// Approved and not run yet (held, or waiting in the outbox), in queue order.
    pub fn approved_ids(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| r.action.state == ActionState::Approved)
            .map(|r| r.action.id.clone())
            .collect()
    }

    pub fn toggle_mark(&mut self) {
        if let Some(r) = self.current() {
            let id = r.action.id.clone();
            if !is_pending(r.action.state) {
                return;
            }
            if !self.marks.remove(&id) {
                self.marks.insert(id);
            }
        }
    }

    /// First `v` sets the anchor; the second marks every pending row in between.
    pub fn range(&mut self) -> usize {
        match self.range_anchor.take() {
            None => {
                self.range_anchor = Some(self.cursor);
                0
            }
            Some(a) => {
                let (lo, hi) = (a.min(self.cursor), a.max(self.cursor));
                let mut n = 0;
                for pos in lo..=hi {
                    if let Some(r) = self.visible.get(pos).and_then(|&i| self.rows.get(i))
                        && is_pending(r.action.state)
                    {
                        self.marks.insert(r.action.id.clone());
                        n += 1;
                    }
                }
                n
            }
        }
    }

    /// Marked ids in display order (falls back to the current row when nothing is marked).
    pub fn targets(&self) -> Vec<String> {
        if self.marks.is_empty() {
            return self
                .current()
                .filter(|r| is_pending(r.action.state))
                .map(|r| vec![r.action.id.clone()])
                .unwrap_or_default();
        }
        self.rows
            .iter()
            .filter(|r| self.marks.contains(&r.action.id))
            .map(|r| r.action.id.clone())
            .collect()
    }
}

impl ActionsTab {
    /// What `r` rejects: the marks, or the current row if it is pending or approved but
    /// not yet executing (rejecting an approval cancels it before it runs).
    pub fn reject_targets(&self) -> Vec<String> {
        if !self.marks.is_empty() {
            return self.targets();
        }
        self.current()
            .filter(|r| is_pending(r.action.state) || r.action.state == ActionState::Approved)
            .map(|r| vec![r.action.id.clone()])
            .unwrap_or_default()
    }
}

/// Newest first, as `Store::list_actions` lists them.
fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        (b.action.created_at, b.action.id.as_str())
            .cmp(&(a.action.created_at, a.action.id.as_str()))
    });
}

fn haystack(a: &Action) -> String {
    format!(
        "{} {} {} {} {}",
        a.id,
        a.kind(),
        a.params.target(),
        a.title,
        a.state
    )
    .to_lowercase()
}
