//! Audit tab state: a window of the log (newest first) paged from the store by seq, a
//! filter over surface, kind, outcome and actor, and the chain verification status
//! reported by a background job.
//!
//! The tab never holds the log (issue 18): it holds what is on screen plus a margin,
//! at most [`HOLD`] rows, and asks for the next page ([`StoreEffect::LoadAudit`]) as the
//! cursor nears an edge of the window. A `kind:` term naming an action kind is pushed
//! down to the store; the other terms are matched here, over at most
//! [`SEARCH_BUDGET`] entries per request, and a row under the list says how far the
//! search read and that moving past the end reads further.

use crate::core::audit::{AuditEntry, ChainBreak};
use crate::core::domain::{ActionKind, Millis};
use crate::tui::msg::Effect;
use crate::tui::msg::StoreEffect;

/// Rows asked for per page.
pub const PAGE: usize = 200;
/// Rows held at most: a page or two each side of what is on screen.
pub const HOLD: usize = 4 * PAGE;
/// A page is asked for when the cursor comes this close to an edge of the window.
pub const MARGIN: usize = PAGE / 2;
/// Entries a search (terms matched here, not by the store) reads per request.
pub const SEARCH_BUDGET: usize = 5000;

#[derive(Debug, Clone, PartialEq)]
pub enum VerifyState {
    NotRun,
    Running,
    Verified { entries: i64, at: Millis },
    Broken(ChainBreak),
    Failed(String),
}

/// What lies beyond one end of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// Nothing: the log (or the filter's matches) ends here.
    End,
    /// More, from this seq on (exclusive): asked for as the cursor nears the edge.
    More(i64),
    /// A search read its budget and stopped at this seq: asked for only when the
    /// cursor moves past the end (the visible "load more" row).
    Searched(i64),
}

/// Where a page goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Replace the window with the newest page.
    Newest,
    /// Replace the window with the oldest page.
    Oldest,
    /// Extend the window below: entries older than this seq.
    Older(i64),
    /// Extend the window above: entries newer than this seq.
    Newer(i64),
}

/// A page request: where, and the filter split into what the store applies (`kinds`)
/// and what is matched here (`terms`, lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFetch {
    /// Pages of an older request (the filter changed, a jump) are dropped.
    pub generation: u64,
    pub side: Side,
    pub kinds: Vec<String>,
    pub terms: Vec<String>,
}

/// A page as the store answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub generation: u64,
    pub side: Side,
    /// In walk order: newest first for `Newest`/`Older`, oldest first otherwise.
    pub rows: Vec<AuditEntry>,
    /// What lies beyond the last row, in walk order.
    pub beyond: Edge,
    /// Entries in the log.
    pub total: i64,
}

#[derive(Debug, Clone)]
pub struct AuditTab {
    /// The window, newest first.
    pub rows: Vec<AuditEntry>,
    pub cursor: usize,
    pub filter: String,
    pub verify: VerifyState,
    pub loaded: bool,
    /// The evidence pane's scroll (J/K).
    pub evidence: super::pane_scroll::PaneScroll,
    /// Entries in the log, as of the last page.
    pub total: i64,
    /// Above the first row, and below the last.
    pub newer: Edge,
    pub older: Edge,
    generation: u64,
    /// A request is out: one at a time, so pages arrive in order.
    pending: bool,
    /// The seq to put the cursor back on when a reload lands.
    keep: Option<i64>,
}

impl Default for AuditTab {
    fn default() -> Self {
        AuditTab {
            rows: Vec::new(),
            cursor: 0,
            filter: String::new(),
            verify: VerifyState::NotRun,
            loaded: false,
            evidence: Default::default(),
            total: 0,
            newer: Edge::End,
            older: Edge::End,
            generation: 0,
            pending: false,
            keep: None,
        }
    }
}

impl AuditTab {
    /// Reloads the newest page, keeping the cursor on the same entry if it is there.
    pub fn reload(&mut self) -> Vec<Effect> {
        self.keep = self.current().map(|e| e.seq);
        self.restart(Side::Newest)
    }

    /// The filter changed: its matches from the newest.
    pub fn refilter(&mut self) -> Vec<Effect> {
        self.keep = None;
        self.cursor = 0;
        self.restart(Side::Newest)
    }

    /// A fresh request that outdates any page still on its way.
    fn restart(&mut self, side: Side) -> Vec<Effect> {
        self.generation += 1;
        self.pending = false;
        self.request(side)
    }

    fn request(&mut self, side: Side) -> Vec<Effect> {
        if self.pending {
            return vec![];
        }
        self.pending = true;
        let (kinds, terms) = split_filter(&self.filter);
        vec![Effect::Store(StoreEffect::LoadAudit(AuditFetch {
            generation: self.generation,
            side,
            kinds,
            terms,
        }))]
    }

    /// Top (`g`): the newest entry, asking for the newest page unless it is held.
    pub fn top(&mut self) -> Vec<Effect> {
        self.cursor = 0;
        if self.newer == Edge::End {
            return vec![];
        }
        self.keep = None;
        self.restart(Side::Newest)
    }

    /// Bottom (`G`): the oldest entry, asking for the oldest page unless it is held.
    pub fn bottom(&mut self) -> Vec<Effect> {
        self.cursor = self.rows.len().saturating_sub(1);
        if self.older == Edge::End {
            return vec![];
        }
        self.restart(Side::Oldest)
    }

    /// After the cursor moved (`past`: it tried to move beyond the last or first row):
    /// the next page when the cursor nears an edge with more beyond it, or, past the
    /// end of a search, the next stretch of the search.
    pub fn follow(&mut self, past: Option<bool>) -> Vec<Effect> {
        match (self.older, self.newer) {
            (Edge::More(b), _) if self.cursor + MARGIN >= self.rows.len() => {
                self.request(Side::Older(b))
            }
            (_, Edge::More(b)) if self.cursor < MARGIN => self.request(Side::Newer(b)),
            (Edge::Searched(b), _) if past == Some(true) => self.request(Side::Older(b)),
            (_, Edge::Searched(b)) if past == Some(false) => self.request(Side::Newer(b)),
            _ => vec![],
        }
    }

    /// A page arrived. Returns what to ask for next (the window may still be short of
    /// the margin).
    pub fn apply(&mut self, page: AuditPage) -> Vec<Effect> {
        if page.generation != self.generation {
            return vec![];
        }
        self.pending = false;
        self.loaded = true;
        self.total = page.total;
        match page.side {
            Side::Newest => {
                self.rows = page.rows;
                self.newer = Edge::End;
                self.older = page.beyond;
                self.cursor = match self.keep.take() {
                    Some(seq) => self.rows.iter().position(|e| e.seq == seq).unwrap_or(0),
                    None => self.cursor.min(self.rows.len().saturating_sub(1)),
                };
            }
            Side::Oldest => {
                self.rows = page.rows;
                self.rows.reverse();
                self.older = Edge::End;
                self.newer = page.beyond;
                self.cursor = self.rows.len().saturating_sub(1);
            }
            Side::Older(_) => {
                self.rows.extend(page.rows);
                self.older = page.beyond;
                let over = self.rows.len().saturating_sub(HOLD).min(self.cursor);
                if over > 0 {
                    self.rows.drain(..over);
                    self.cursor -= over;
                    self.newer = Edge::More(self.rows[0].seq);
                }
            }
            Side::Newer(_) => {
                let n = page.rows.len();
                let mut rows = page.rows;
                rows.reverse();
                rows.append(&mut self.rows);
                self.rows = rows;
                self.cursor += n;
                self.newer = page.beyond;
                let keep = HOLD.max(self.cursor + 1);
                if self.rows.len() > keep {
                    self.rows.truncate(keep);
                    self.older = Edge::More(self.rows[keep - 1].seq);
                }
            }
        }
        self.follow(None)
    }

    /// A page could not be read: the next move may ask again.
    pub fn failed(&mut self) {
        self.pending = false;
    }

    /// Scrolls the evidence pane by `by` lines (negative: up), within what it holds.
    pub fn scroll_evidence(&mut self, by: i32) {
        if let Some(seq) = self.current().map(|e| e.seq.to_string()) {
            self.evidence.scroll(&seq, by);
        }
    }

    pub fn current(&self) -> Option<&AuditEntry> {
        self.rows.get(self.cursor)
    }

    /// "5" when every match is held, "200+" when more lie beyond the window.
    pub fn shown(&self) -> String {
        if self.filter.trim().is_empty() {
            self.total.to_string()
        } else if self.newer == Edge::End && self.older == Edge::End {
            self.rows.len().to_string()
        } else {
            format!("{}+", self.rows.len())
        }
    }

    /// The "load more" row, when a search stopped at its budget on either side.
    pub fn searched(&self) -> Option<String> {
        let say = |seq: i64, dir: &str, key: &str| {
            format!(
                "⋯ searched {dir} #{seq} ({SEARCH_BUDGET} entries a time) · {key} past the end searches further"
            )
        };
        match (self.older, self.newer) {
            (Edge::Searched(b), _) => Some(say(b, "back to", "↓")),
            (_, Edge::Searched(b)) => Some(say(b, "up to", "↑")),
            _ => None,
        }
    }
}

/// The filter as the store applies it (the action kinds a `kind:` term names) and as
/// it is matched here (every term, lowercased: a pushed-down kind still matches).
pub fn split_filter(filter: &str) -> (Vec<String>, Vec<String>) {
    let terms: Vec<String> = filter.split_whitespace().map(str::to_lowercase).collect();
    let kinds = terms
        .iter()
        .find_map(|t| t.strip_prefix("kind:"))
        .filter(|want| !want.is_empty())
        .map(|want| {
            ActionKind::ALL
                .iter()
                .map(|k| k.as_str())
                .filter(|k| k.contains(want))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    (kinds, terms)
}

/// Filter syntax: `surface:chat kind:send_email outcome:denied actor:user:ann` plus
/// free words matched anywhere in the row. `kind:` names an action kind (what the
/// entry is about, `detail.kind`).
pub fn matches(e: &AuditEntry, term: &str) -> bool {
    let surface = e
        .surface
        .map_or("-".to_string(), |s| s.as_str().to_string());
    let kind = e
        .detail
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or("")
        .to_lowercase();
    if let Some((field, want)) = term.split_once(':') {
        match field {
            "surface" => return surface.contains(want),
            "kind" => return kind.contains(want),
            "outcome" => return e.outcome.to_lowercase().contains(want),
            "actor" => return e.actor.to_lowercase().contains(want),
            "event" => return e.event.to_lowercase().contains(want),
            _ => {}
        }
    }
    let hay = format!(
        "{} {} {} {} {} {}",
        e.actor,
        surface,
        e.event,
        e.action_id.as_deref().unwrap_or(""),
        e.outcome,
        kind
    )
    .to_lowercase();
    hay.contains(term)
}
