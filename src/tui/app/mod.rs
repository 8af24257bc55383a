//! The application state and `update(Msg) -> Vec<Effect>`: the only place state changes.
//! No IO, no await, no locks here; time comes from the injected [`Clock`]. Rendering
//! (`view`) is a pure read of this state.
//!
//! By feature: `messages` (each `Msg`), `commands` (keys and the keymap's verbs),
//! `queue` (Action Center decisions, the outbox), `popup_keys` (keys inside a popup),
//! `trust` (calibration), `accounts` (connects, permission values), `chat_keys` (the
//! Chat input and its step-up prompt), `services_state` (what waits for sign-in).

mod accounts;
mod chat_keys;
mod commands;
mod messages;
mod popup_keys;
mod queue;
mod services_state;
mod trust;

pub use crate::tui::tab::Tab;
pub use services_state::ServicesState;

use super::actions::{ActionsTab, BulkPlan, SavedView};
use super::audit::AuditTab;
use super::chat::ChatTab;
use super::clock::Clock;
use super::editor::EditorState;
use super::keymap::{Command, Keymap};
use super::msg::{Effect, Msg};
use super::permissions::{PermRow, PermissionsTab};
use super::theme::Theme;
use crate::core::domain::Millis;
use crate::tui::msg::StoreEffect;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Keys typed within this long after a confirmation prompt appears are ignored, so a
/// prompt that pops up mid-typing cannot be answered by accident.
pub const INPUT_GUARD_MS: Millis = 1000;
/// How long before an outbox send goes it rings (a rep in another pane can still `u`).
pub const OUTBOX_WARNING_MS: Millis = 3000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Ok,
    Warn,
    Error,
}

/// How long a warning or an error on the status line holds against background news.
pub const STATUS_HOLD_MS: Millis = 8_000;

/// Modal layers over the tabs; at most one at a time.
#[derive(Debug, Clone)]
pub enum Popup {
    Help {
        scroll: usize,
    },
    /// Inline step-up: exactly what approving will do.
    StepUp {
        id: String,
        /// The version shown: approving refuses if the action changed since.
        version: i64,
        lines: Vec<String>,
        gate: String,
        opened_at: Millis,
        /// Rows scrolled past; `y` waits until the last row has been shown.
        scroll: usize,
    },
    Reject {
        ids: Vec<String>,
        reason: String,
        /// Sends taken out of the outbox while the person decides; `Esc` puts them back.
        resume: Vec<String>,
    },
    Bulk {
        plan: BulkPlan,
        typed: String,
        opened_at: Millis,
        /// Rows scrolled past; the typed count waits until the last row has been shown.
        scroll: usize,
    },
    Palette {
        query: String,
        selected: usize,
    },
    Editor(Box<EditorState>),
    PermValue {
        row: PermRow,
        text: String,
    },
    /// Trust calibration: nudges to accept or dismiss, and the auto-approve rules with
    /// their hits, to revoke. Accepting loosens the leash, so that one key has the
    /// input guard (moving and revoking do not).
    Trust {
        cursor: usize,
        opened_at: Millis,
    },
    /// Calibration made visible: for one action kind at a time, how often you approved
    /// unedited what the agent proposed at each confidence band, against the ideal.
    Calibration {
        /// Index into [`crate::tui::trust::calibration_kinds`].
        kind: usize,
    },
    /// An account connect in progress: the link to open, and a line for pasting the
    /// address the browser ends on when it is on another machine.
    Connect {
        connection: crate::core::domain::Connection,
        /// The link to open, and what the connect adds and keeps.
        url: Option<(String, String)>,
        pasted: String,
    },
    /// An action needs an account that is disconnected: connect it now, or leave the
    /// action pending (approving would only fail after the outbox countdown).
    NeedsAccount {
        connection: crate::core::domain::Connection,
        /// What needs it ("Follow up with Bill (send_email)").
        what: String,
    },
}

impl Popup {
    fn guarded_since(&self) -> Option<Millis> {
        match self {
            Popup::StepUp { opened_at, .. } | Popup::Bulk { opened_at, .. } => Some(*opened_at),
            _ => None,
        }
    }
}

/// Who and where, for the status bar.
#[derive(Debug, Clone)]
pub struct Session {
    /// "user:<unix user>", as audit rows record it.
    pub actor: String,
    pub sandbox: bool,
    /// The Auth0 tenant domain, when configured (shown instead of SANDBOX).
    pub tenant: Option<String>,
    pub store: String,
    pub notify: bool,
}

/// One palette entry.
#[derive(Debug, Clone, PartialEq)]
pub enum PaletteItem {
    Run(Command, String),
    SavedView(SavedView),
}

impl PaletteItem {
    pub fn label(&self) -> String {
        match self {
            PaletteItem::Run(c, desc) => format!("{} — {desc}", c.name()),
            PaletteItem::SavedView(v) => format!("view {} — saved view", v.name()),
        }
    }
}

pub struct App {
    pub session: Session,
    pub keymap: Keymap,
    pub theme: Theme,
    clock: Arc<dyn Clock>,
    /// The clock as of the last update, so rendering never reads a clock.
    pub now: Millis,
    /// The person's time zone as an offset from UTC, in seconds (set at start from the
    /// system's; UTC in tests, so renderings do not depend on the machine).
    pub utc_offset_s: i32,
    /// The background service as last seen: running (or died), and when it last filed
    /// something. `None`: no service.
    pub service: Option<(bool, Option<Millis>)>,
    /// Pushes waiting on this user's phone as team lead.
    pub lead_waiting: usize,
    pub tab: Tab,
    pub actions: ActionsTab,
    pub perms: PermissionsTab,
    pub audit: AuditTab,
    pub chat: ChatTab,
    pub popup: Option<Popup>,
    /// `Some` while the `/` filter line is being typed.
    pub filtering: bool,
    pub status: Option<(Level, String)>,
    /// When the status line was last set: a warning holds its place for a while against
    /// background news (see [`STATUS_HOLD_MS`]).
    status_at: Millis,
    /// The terminal size (cols, rows) from the last resize, for mouse hit-testing.
    pub size: (u16, u16),
    pub dirty: bool,
    /// Set by ctrl-l: the loop clears the terminal before the next draw.
    pub clear: bool,
    pub quit: bool,
    seen_pending: Option<BTreeSet<String>>,
    /// The idle lock; while locked the view shows only the lock screen.
    pub lock: super::lock::Lock,
    /// Approved irreversible sends waiting out the undo window.
    pub outbox: super::outbox::Outbox,
    /// Whether the first load has been seen (it says what was left approved, unrun).
    loaded_once: bool,
    /// Calibration replayed from the audit log: track records, nudges, rule hits.
    pub trust: super::trust::Trust,
    /// The quit key was pressed once with sends in the outbox; a second press quits.
    quit_armed: bool,
    /// Recent approvals, for the rubber-stamp guard.
    pub pace: super::pace::Pace,
    /// Approved actions whose last run was stopped before it started (an account off, a
    /// scope taken back), with why: the row says "blocked" instead of a silent
    /// "approved", until it runs or leaves the approved state.
    pub blocked: BTreeMap<String, String>,
    /// Whether the signed-in services are still being built, and what waits for them.
    pub services: ServicesState,
}

impl App {
    pub fn new(session: Session, keymap: Keymap, theme: Theme, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now_ms();
        App {
            session,
            keymap,
            theme,
            clock,
            now,
            utc_offset_s: 0,
            service: None,
            lead_waiting: 0,
            tab: Tab::Actions,
            actions: ActionsTab::default(),
            perms: PermissionsTab::default(),
            audit: AuditTab::default(),
            chat: ChatTab::default(),
            popup: None,
            filtering: false,
            status: None,
            status_at: now,
            size: (0, 0),
            dirty: true,
            clear: false,
            quit: false,
            seen_pending: None,
            lock: super::lock::Lock {
                last_input: now,
                ..Default::default()
            },
            outbox: super::outbox::Outbox::default(),
            loaded_once: false,
            trust: super::trust::Trust::default(),
            quit_armed: false,
            pace: super::pace::Pace::default(),
            blocked: BTreeMap::new(),
            services: ServicesState::Settled,
        }
    }

    /// Effects to run once at start-up.
    pub fn init(&self) -> Vec<Effect> {
        vec![Effect::Store(StoreEffect::LoadFirstActions)]
    }

    pub fn set_status(&mut self, level: Level, text: impl Into<String>) {
        self.status = Some((level, text.into()));
        self.status_at = self.now;
    }

    /// Background news (sign-in done, a suggestion run) for the status line: it does not
    /// push a warning or an error off the line before the person had time to read it.
    fn background_status(&mut self, level: Level, text: String) {
        let holding = matches!(self.status, Some((Level::Warn | Level::Error, _)))
            && self.now - self.status_at < STATUS_HOLD_MS;
        if holding && matches!(level, Level::Ok | Level::Info) {
            return;
        }
        self.set_status(level, text);
    }

    /// Why a key inside [`INPUT_GUARD_MS`] of a prompt did nothing.
    fn say_input_guard(&mut self) {
        self.set_status(
            Level::Warn,
            "input guard: keys ignored for 1 s after a prompt appears",
        );
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        let effects = self.update_unheld(msg);
        self.hold(effects)
    }

    fn update_unheld(&mut self, msg: Msg) -> Vec<Effect> {
        self.now = self.clock.now_ms();
        self.dirty = true;
        // Idle time is checked before input counts: the first key after a long absence
        // meets the lock (it must not approve something on a screen nobody watched).
        let mut effects: Vec<Effect> = self.lock.check_idle(self.now).into_iter().collect();
        if self.lock.is_locked() {
            match msg {
                Msg::Key(k) => {
                    effects.extend(self.on_locked_key(k));
                    return effects;
                }
                Msg::Paste(_) | Msg::Mouse(_) => return effects,
                Msg::Unlock(r) => {
                    effects.extend(self.lock.answer(r, self.now));
                    return effects;
                }
                _ => {}
            }
        } else if matches!(msg, Msg::Key(_) | Msg::Paste(_) | Msg::Mouse(_)) {
            self.lock.last_input = self.now;
        }
        // Background messages keep the hidden state fresh while locked.
        effects.extend(self.handle(msg));
        effects
    }

    /// While locked: Enter asks to unlock, the quit key quits, nothing else does anything.
    fn on_locked_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if k.code == KeyCode::Enter {
            return self.lock.ask();
        }
        if self.keymap.resolve(self.tab.section(), &k) == Some(Command::Quit) {
            return self.run(Command::Quit);
        }
        self.dirty = false;
        vec![]
    }
}

/// Pasted or agent-supplied text must not smuggle terminal control sequences.
pub fn strip_controls(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect()
}
