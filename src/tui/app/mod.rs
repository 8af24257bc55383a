//! The application state and `update(Msg) -> Vec<Effect>`: the only place state changes.
//! No IO, no await, no locks here; time comes from the injected [`Clock`]. Rendering
//! (`view`) is a pure read of this state.

mod popup_keys;
mod services_state;

pub use services_state::ServicesState;

use super::actions::{ActionsTab, BulkPlan, View, bulk_plan, is_pending, what_will_happen};
use super::audit::{AuditTab, VerifyState};
use super::chat::{ChatLine, ChatTab};
use super::clock::Clock;
use super::editor::EditorState;
use super::keymap::{Command, Keymap, Section};
use super::msg::{ChatEvent, Effect, Msg, Verb};
use super::permissions::{PermRow, PermissionsTab, rows as perm_rows};
use super::theme::Theme;
use crate::core::consent::Gate;
use crate::core::domain::Millis;
use crate::tui::msg::{ChatEffect, PipelineEffect, StoreEffect, UiEffect};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEventKind};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Keys typed within this long after a confirmation prompt appears are ignored, so a
/// prompt that pops up mid-typing cannot be answered by accident.
pub const INPUT_GUARD_MS: Millis = 1000;
/// How long before an outbox send goes it rings (a rep in another pane can still `u`).
pub const OUTBOX_WARNING_MS: Millis = 3000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Actions,
    Chat,
    Permissions,
    Audit,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Actions, Tab::Chat, Tab::Permissions, Tab::Audit];
    pub fn title(self) -> &'static str {
        match self {
            Tab::Actions => "Actions",
            Tab::Chat => "Chat",
            Tab::Permissions => "Permissions",
            Tab::Audit => "Audit",
        }
    }
    fn section(self) -> Section {
        match self {
            Tab::Actions => Section::Actions,
            Tab::Chat => Section::Chat,
            Tab::Permissions => Section::Permissions,
            Tab::Audit => Section::Audit,
        }
    }
}

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
        /// Index into [`crate::tui::view::calibration_kinds`].
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
    View(View),
}

impl PaletteItem {
    pub fn label(&self) -> String {
        match self {
            PaletteItem::Run(c, desc) => format!("{} — {desc}", c.name()),
            PaletteItem::View(v) => format!("view {} — saved view", v.name()),
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
        vec![Effect::Store(StoreEffect::LoadActions)]
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

    fn handle(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(k) => self.on_key(k),
            Msg::Paste(text) => {
                let clean = strip_controls(&text).replace('\n', " ");
                match &mut self.popup {
                    Some(Popup::Editor(ed)) => {
                        ed.textarea.insert_str(&text);
                    }
                    Some(Popup::Reject { reason: t, .. })
                    | Some(Popup::Palette { query: t, .. })
                    | Some(Popup::PermValue { text: t, .. })
                    | Some(Popup::Connect { pasted: t, .. }) => t.push_str(&clean),
                    // Never paste into a confirmation prompt.
                    Some(_) => {}
                    None if self.filtering => match self.tab {
                        Tab::Audit => {
                            self.audit.filter.push_str(&clean);
                            return self.audit.refilter();
                        }
                        _ => {
                            self.actions.filter.push_str(&clean);
                            self.actions.refilter();
                        }
                    },
                    None if self.chat.composing => self.chat.input.push_str(&clean),
                    _ => {}
                }
                vec![]
            }
            Msg::Mouse(_) if self.popup.is_some() => {
                self.dirty = false;
                vec![]
            }
            Msg::Mouse(m) => match m.kind {
                MouseEventKind::ScrollDown => self.run(Command::Down),
                MouseEventKind::ScrollUp => self.run(Command::Up),
                MouseEventKind::Down(_) if m.row > 0 => {
                    self.click_row(m.column, m.row);
                    vec![]
                }
                MouseEventKind::Down(_) => {
                    // The tab bar: " 1 Actions " plus a space per tab (see view::render_tabs).
                    let mut x = 0u16;
                    for t in Tab::ALL {
                        let w = t.title().len() as u16 + 5;
                        if m.column < x + w {
                            return self.switch(t);
                        }
                        x += w;
                    }
                    vec![]
                }
                _ => {
                    self.dirty = false;
                    vec![]
                }
            },
            Msg::Resize(w, h) => {
                self.size = (w, h);
                vec![]
            }
            // Refresh on every tab: execution status stays live and new work notifies
            // wherever the user is.
            Msg::Tick => {
                let mut out = self.send_due();
                out.push(Effect::Store(StoreEffect::LoadActions));
                out.extend(self.calibrate());
                out
            }
            Msg::Clock => self.send_due(),
            Msg::FinishedTotal(n) => {
                self.actions.finished_total = Some(n);
                vec![]
            }
            Msg::OlderActionsLoaded { gated, asked } => {
                self.actions.load_older(gated, &asked);
                vec![]
            }
            Msg::ActionsLoaded { gated, permissions } => {
                self.actions.load(gated);
                // Only an action still waiting approved can be blocked.
                let rows = &self.actions.rows;
                self.blocked.retain(|id, _| {
                    rows.iter().any(|r| {
                        &r.action.id == id
                            && r.action.state == crate::core::domain::ActionState::Approved
                    })
                });
                let selected = self.trust_selection();
                let before = self.perms.perms.replace(*permissions);
                self.keep_trust_selection(selected);
                self.say_newly_paused(before.as_ref());
                let mut out = vec![];
                if !self.loaded_once {
                    self.loaded_once = true;
                    self.say_what_was_left_approved();
                    out.extend(self.calibrate());
                }
                out.extend(self.notify_new());
                out
            }
            Msg::LoadFailed(e) => {
                self.set_status(Level::Error, e);
                vec![]
            }
            Msg::Reviewed { id, verb, result } => {
                match result {
                    Ok(a) => {
                        self.set_status(Level::Ok, format!("{} {id}: {}", verb.past(), a.state));
                        // Approving in the Action Center means "do it": run it now, or,
                        // for an irreversible send, once the undo window has passed.
                        if verb == Verb::Approve
                            && a.state == crate::core::domain::ActionState::Approved
                        {
                            self.pace.record(self.now);
                            return self.send_or_hold(&a);
                        }
                        // Anything else done to it (an edit, a reject, a withdrawal)
                        // takes it out of the outbox: it must not run on the old approval.
                        self.outbox.remove(&id);
                    }
                    Err(e) => self.set_status(Level::Error, e),
                }
                vec![]
            }
            Msg::Executed { id, result } => {
                match &result {
                    Ok(_) => {
                        self.blocked.remove(&id);
                    }
                    Err(e) => {
                        let why = e.strip_prefix(&format!("{id}: ")).unwrap_or(e);
                        self.blocked.insert(id.clone(), why.to_string());
                    }
                }
                match result {
                    Ok(line) => self.set_status(Level::Ok, format!("{id}: {line}")),
                    // Pipeline errors already start with the id: not twice on 80 columns.
                    Err(e) if e.starts_with(&format!("{id}: ")) => self.set_status(Level::Error, e),
                    Err(e) => self.set_status(Level::Error, format!("{id}: {e}")),
                }
                vec![Effect::Store(StoreEffect::LoadActions)]
            }
            Msg::ServiceSeen(seen) => {
                self.service = seen;
                vec![]
            }
            Msg::LeadWaiting(n) => {
                self.lead_waiting = n.unwrap_or(0);
                vec![]
            }
            Msg::Status { ok, text } => {
                self.background_status(if ok { Level::Ok } else { Level::Warn }, text);
                vec![Effect::Store(StoreEffect::LoadActions)]
            }
            Msg::ReviewSummary { verb, ok, failed } => {
                let total = ok + failed.len();
                match failed.first() {
                    None => self.set_status(Level::Ok, format!("{} {ok} of {total}", verb.past())),
                    Some((id, e)) => {
                        let more = if failed.len() > 1 {
                            format!(" (+{} more failed)", failed.len() - 1)
                        } else {
                            String::new()
                        };
                        self.set_status(
                            Level::Error,
                            format!("{} {ok} of {total} · {id}: {e}{more}", verb.past()),
                        );
                    }
                }
                vec![]
            }
            Msg::PermissionsSaved(r) => match r {
                Ok(p) => {
                    let selected = self.trust_selection();
                    self.perms.perms = Some(*p);
                    self.keep_trust_selection(selected);
                    self.set_status(Level::Ok, "permissions saved (audited)");
                    vec![Effect::Store(StoreEffect::LoadActions)]
                }
                Err(e) => {
                    self.set_status(Level::Error, e);
                    vec![]
                }
            },
            Msg::AuditPage(Ok(page)) => self.audit.apply(*page),
            Msg::AuditPage(Err(e)) => {
                self.audit.failed();
                self.set_status(Level::Error, e);
                vec![]
            }
            Msg::AuditVerified(r) => {
                // Said on the status line too: `:verify` may run from any tab.
                match &r {
                    Ok(Ok(n)) => {
                        self.set_status(Level::Ok, format!("audit chain: ✓ {n} entries verified"))
                    }
                    Ok(Err(b)) => self.set_status(
                        Level::Error,
                        format!("audit chain BROKEN at #{}: {}", b.seq, b.problem),
                    ),
                    Err(e) => self.set_status(Level::Error, format!("audit verify failed: {e}")),
                }
                self.audit.verify = match r {
                    Ok(Ok(n)) => VerifyState::Verified {
                        entries: n,
                        at: self.now,
                    },
                    Ok(Err(b)) => VerifyState::Broken(b),
                    Err(e) => VerifyState::Failed(e),
                };
                vec![]
            }
            Msg::Exported(r) => {
                match r {
                    Ok(m) => self.set_status(Level::Ok, m),
                    Err(e) => self.set_status(Level::Error, e),
                }
                vec![]
            }
            Msg::Unavailable(what) => {
                if what.starts_with("chat") {
                    self.chat.running = false;
                    self.chat.lines.push(ChatLine::System(what.clone()));
                }
                self.set_status(Level::Warn, what);
                vec![]
            }
            // Not locked (anymore): nothing to unlock.
            Msg::Unlock(_) => vec![],
            Msg::Connect(ev) => self.on_connect(ev),
            Msg::ServicesReady(report) => self.on_services_ready(report),
            Msg::Calibrated(r) => self.on_calibrated(r),
            Msg::Chat(ev) => {
                let ring = match &ev {
                    ChatEvent::StepUp { summary, .. } if self.session.notify => {
                        Some(Effect::Ui(UiEffect::Notify {
                            title: "dealflow: confirm in Chat".into(),
                            body: summary.clone(),
                        }))
                    }
                    _ => None,
                };
                self.chat.apply(ev, self.now);
                ring.into_iter().collect()
            }
        }
    }

    /// An approved action runs now, unless it is an irreversible send and the outbox
    /// is on: then it waits out the undo window.
    fn send_or_hold(&mut self, a: &crate::core::domain::Action) -> Vec<Effect> {
        match self.outbox.hold(&a.id, a.kind(), self.now) {
            Some(_) => {
                let secs = self.outbox.secs_left(&a.id, self.now).unwrap_or_default();
                let undo = self.keymap.keys_for(Section::Actions, Command::UndoSend);
                self.set_status(
                    Level::Ok,
                    format!("{}: sends in {secs}s · {undo} takes it back", a.id),
                );
                vec![]
            }
            None => vec![Effect::Pipeline(PipelineEffect::ExecuteApproved(vec![
                a.id.clone(),
            ]))],
        }
    }

    /// Asks for a fresh calibration unless one is running (the executor answers at
    /// once when the audit log has not moved).
    fn calibrate(&mut self) -> Vec<Effect> {
        if self.trust.loading {
            return vec![];
        }
        self.trust.loading = true;
        vec![Effect::Store(StoreEffect::LoadCalibration {
            known_head: self.trust.head(),
        })]
    }

    /// How far the help list scrolls before its last line is at the bottom of the popup
    /// (the popup is the screen less two rows each side, less its border).
    pub fn help_max_scroll(&self) -> usize {
        let rows = self.keymap.help();
        let mut sections: Vec<_> = rows.iter().map(|r| r.section).collect();
        sections.dedup();
        let lines = rows.len() + sections.len();
        let body = (self.size.1 as usize).saturating_sub(6);
        lines.saturating_sub(body)
    }

    /// A "no" just paused a rule (a reject or an undo here, or the CLI): say which, and
    /// where to look at it. Not on the first load, which has nothing to compare with.
    fn say_newly_paused(&mut self, before: Option<&crate::core::permissions::Permissions>) {
        let Some(before) = before else { return };
        let was_paused = |id: &str| {
            before
                .auto_rules
                .iter()
                .any(|r| r.id == id && r.paused.is_some())
        };
        let Some(now) = &self.perms.perms else { return };
        let fresh: Vec<String> = now
            .auto_rules
            .iter()
            .filter(|r| !was_paused(&r.id))
            .filter_map(|r| {
                let p = r.paused.as_ref()?;
                Some(format!(
                    "auto-approve rule {} to {} paused: you {} {}",
                    r.kind, r.target, p.by, p.action_id
                ))
            })
            .collect();
        if let Some(first) = fresh.first() {
            let key = self.keymap.keys_for(Section::Actions, Command::Trust);
            self.set_status(
                Level::Warn,
                format!("{first} · {key} opens Trust to resume or revoke it"),
            );
        }
    }

    /// The Trust popup's selected row, by identity.
    fn trust_selection(&self) -> Option<String> {
        let Some(Popup::Trust { cursor, .. }) = &self.popup else {
            return None;
        };
        self.trust
            .items(self.perms.perms.as_ref())
            .get(*cursor)
            .map(|i| i.key())
    }

    /// After the Trust list changed under an open popup: the cursor follows the row it
    /// was on, and if that row moved or went, the input guard starts again, so a key
    /// meant for one nudge never accepts another.
    fn keep_trust_selection(&mut self, before: Option<String>) {
        if !matches!(self.popup, Some(Popup::Trust { .. })) {
            return;
        }
        let items: Vec<String> = self
            .trust
            .items(self.perms.perms.as_ref())
            .iter()
            .map(|i| i.key())
            .collect();
        if let Some(Popup::Trust { cursor, opened_at }) = &mut self.popup {
            let now_at = before
                .as_ref()
                .and_then(|k| items.iter().position(|i| i == k));
            if now_at != Some(*cursor) {
                *cursor = now_at.unwrap_or((*cursor).min(items.len().saturating_sub(1)));
                *opened_at = self.now;
            }
        }
    }

    fn on_calibrated(
        &mut self,
        r: Result<Option<Box<super::trust::Calibrated>>, String>,
    ) -> Vec<Effect> {
        self.trust.loading = false;
        let mut ring = vec![];
        let selected = self.trust_selection();
        match r {
            Ok(Some(c)) => {
                let before: BTreeSet<(crate::core::domain::ActionKind, String)> = self
                    .trust
                    .nudges()
                    .iter()
                    .map(|n| (n.kind, n.target.clone()))
                    .collect();
                let first = self.trust.latest.is_none();
                self.trust.latest = Some(*c);
                let fresh = self
                    .trust
                    .nudges()
                    .into_iter()
                    .find(|n| !before.contains(&(n.kind, n.target.clone())))
                    .map(|n| n.text.clone());
                // Suggest once, quietly, on the status line: never a popup in the way.
                // A new nudge (not one found on start-up) also rings, once.
                if let Some(text) = fresh
                    && (!first || self.status.is_none())
                {
                    let key = self.keymap.keys_for(Section::Actions, Command::Trust);
                    self.set_status(
                        Level::Info,
                        format!("calibration suggests: {text} · {key} to review"),
                    );
                    if !first && self.session.notify {
                        ring.push(Effect::Ui(UiEffect::Notify {
                            title: "dealflow: calibration suggests a rule".into(),
                            body: text,
                        }));
                    }
                }
            }
            Ok(None) => {}
            Err(e) => self.set_status(Level::Warn, e),
        }
        self.keep_trust_selection(selected);
        ring
    }

    /// Runs what the outbox has held long enough.
    fn send_due(&mut self) -> Vec<Effect> {
        let mut out = vec![];
        let soon = self.outbox.about_to_go(self.now, OUTBOX_WARNING_MS);
        if !soon.is_empty() && self.session.notify {
            let what: Vec<String> = soon
                .iter()
                .filter_map(|id| self.actions.row_by_id(id))
                .map(|r| format!("{} ({})", r.action.title, r.action.kind()))
                .collect();
            let key = self.keymap.keys_for(Section::Actions, Command::UndoSend);
            out.push(Effect::Ui(UiEffect::Notify {
                title: format!(
                    "dealflow: {} sending in {} s",
                    soon.len(),
                    OUTBOX_WARNING_MS / 1000
                ),
                body: format!("{} · {key} takes it back", what.join(", ")),
            }));
        }
        let due = self.outbox.take_due(self.now);
        if !due.is_empty() {
            out.push(Effect::Pipeline(PipelineEffect::ExecuteApproved(due)));
        }
        out
    }

    /// `u`: the send under the cursor if it waits in the outbox, else the latest one.
    fn undo_send(&mut self) -> Vec<Effect> {
        let current = self
            .actions
            .current()
            .map(|r| r.action.id.clone())
            .filter(|id| self.outbox.remaining(id, self.now).is_some());
        let Some(id) = current.or_else(|| self.outbox.latest().map(str::to_string)) else {
            self.set_status(Level::Warn, "nothing waiting in the outbox to take back");
            return vec![];
        };
        self.outbox.remove(&id);
        self.set_status(Level::Info, format!("{id}: taking the send back…"));
        vec![Effect::Store(StoreEffect::Withdraw(id))]
    }

    /// After a quit or a crash, approvals that never ran (an outbox left behind, `--hold`)
    /// are still approved: say so once, rather than run them unasked or hide them.
    fn say_what_was_left_approved(&mut self) {
        let n = self.actions.approved_ids().len();
        if n > 0 {
            let run = self
                .keymap
                .keys_for(Section::Actions, Command::ExecuteApproved);
            let line =
                format!("{n} approved but not run (held, or left in the outbox): {run} runs them");
            // Alongside a start-up warning (a keymap typo), not instead of it.
            let text = match self.status.take() {
                Some((_, earlier)) => format!("{line} · {earlier}"),
                None => line,
            };
            self.set_status(Level::Warn, text);
        }
    }

    /// Rings when something newly needs the user (not on the first load).
    fn notify_new(&mut self) -> Vec<Effect> {
        let now_pending = self.actions.pending_ids();
        let mut out = vec![];
        if let Some(seen) = &self.seen_pending {
            // Chat's own requests are answered in Chat, which rings for them itself.
            // One pass over the rows: the queue may hold a hundred thousand.
            let fresh: Vec<&crate::core::domain::Action> = self
                .actions
                .rows
                .iter()
                .map(|r| &r.action)
                .filter(|a| {
                    a.surface != crate::core::domain::Surface::Chat
                        && now_pending.contains(&a.id)
                        && !seen.contains(&a.id)
                })
                .collect();
            if !fresh.is_empty() && self.session.notify {
                let first = fresh
                    .first()
                    .map(|a| format!("{} ({})", a.title, a.kind()))
                    .unwrap_or_default();
                out.push(Effect::Ui(UiEffect::Notify {
                    title: format!("dealflow: {} new to review", fresh.len()),
                    body: first,
                }));
            }
        }
        self.seen_pending = Some(now_pending);
        out
    }

    fn switch(&mut self, tab: Tab) -> Vec<Effect> {
        self.tab = tab;
        self.filtering = false;
        match tab {
            Tab::Audit if !self.audit.loaded => {
                self.audit.verify = VerifyState::Running;
                let mut out = self.audit.reload();
                out.push(Effect::Store(StoreEffect::VerifyAudit));
                out
            }
            Tab::Audit => self.audit.reload(),
            _ => vec![],
        }
    }

    fn on_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if self.popup.is_some() {
            return self.on_popup_key(k);
        }
        if self.filtering {
            return self.on_filter_key(k);
        }
        // A pending step-up owns the keyboard in Chat, even while composing: its answer
        // must not be typed into the input box (the input guard still applies).
        if self.tab == Tab::Chat && self.chat.step_up.is_some() {
            return match k.code {
                KeyCode::Char('y') => self.answer_chat_step_up(true),
                KeyCode::Char('n') => self.answer_chat_step_up(false),
                // Esc is always honoured, guard or not: refusing is never dangerous.
                KeyCode::Esc => {
                    if let Some(p) = self.chat.step_up.take() {
                        self.chat.record_step_up(&p, false);
                        return vec![Effect::Chat(ChatEffect::AnswerStepUp {
                            action_id: p.action_id,
                            confirmed: false,
                        })];
                    }
                    vec![]
                }
                code => match popup_keys::payload_scroll(code) {
                    Some(by) => self.scroll_step_up(by),
                    None => vec![],
                },
            };
        }
        if self.tab == Tab::Chat && self.chat.composing {
            return self.on_compose_key(k);
        }
        match self.keymap.resolve(self.tab.section(), &k) {
            Some(cmd) => self.run(cmd),
            None => {
                self.dirty = false;
                vec![]
            }
        }
    }

    /// Runs a named command (from a key or the palette).
    pub fn run(&mut self, cmd: Command) -> Vec<Effect> {
        let armed = std::mem::take(&mut self.quit_armed);
        match cmd {
            // Quitting leaves what waits in the outbox approved and unsent: say so first,
            // and quit on the second press.
            Command::Quit if !self.outbox.is_empty() && !armed => {
                self.quit_armed = true;
                let n = self.outbox.len();
                let key = |c| self.keymap.keys_for(Section::Actions, c);
                let msg = format!(
                    "{n} send{} still in the outbox: quitting leaves {} approved and unsent · {} sends now · {} takes back · {} again quits",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "it" } else { "them" },
                    key(Command::ExecuteApproved),
                    key(Command::UndoSend),
                    key(Command::Quit),
                );
                self.set_status(Level::Warn, msg);
                vec![]
            }
            Command::Quit => {
                self.quit = true;
                vec![Effect::Ui(UiEffect::Quit)]
            }
            Command::Help => {
                self.popup = Some(Popup::Help { scroll: 0 });
                vec![]
            }
            Command::Palette => {
                self.popup = Some(Popup::Palette {
                    query: String::new(),
                    selected: 0,
                });
                vec![]
            }
            Command::NextTab | Command::PrevTab => {
                let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
                let n = Tab::ALL.len();
                let j = if cmd == Command::NextTab {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                self.switch(Tab::ALL[j])
            }
            Command::TabActions => self.switch(Tab::Actions),
            Command::TabChat => self.switch(Tab::Chat),
            Command::TabPermissions => self.switch(Tab::Permissions),
            Command::TabAudit => self.switch(Tab::Audit),
            Command::Down
            | Command::Up
            | Command::Top
            | Command::Bottom
            | Command::PageDown
            | Command::PageUp => self.move_cursor(cmd),
            Command::Filter => {
                if matches!(self.tab, Tab::Actions | Tab::Audit) {
                    self.filtering = true;
                }
                vec![]
            }
            Command::Refresh => match self.tab {
                Tab::Audit => {
                    self.audit.verify = VerifyState::Running;
                    let mut out = self.audit.reload();
                    out.push(Effect::Store(StoreEffect::VerifyAudit));
                    out
                }
                _ => vec![Effect::Store(StoreEffect::LoadActions)],
            },
            Command::Redraw => {
                self.clear = true;
                vec![]
            }
            Command::Approve => self.approve_current(),
            Command::Reject => {
                let ids = self.actions.reject_targets();
                if ids.is_empty() {
                    self.set_status(Level::Warn, "nothing pending or approved to reject here");
                } else {
                    // The countdown must not send what the person is about to reject.
                    let resume: Vec<String> = ids
                        .iter()
                        .filter(|id| self.outbox.remove(id))
                        .cloned()
                        .collect();
                    self.popup = Some(Popup::Reject {
                        ids,
                        reason: String::new(),
                        resume,
                    });
                }
                vec![]
            }
            Command::Edit => {
                match self.actions.current() {
                    Some(r) if is_pending(r.action.state) => {
                        let a = &r.action;
                        self.popup = Some(Popup::Editor(Box::new(EditorState::new(
                            a.id.clone(),
                            a.version,
                            &a.params,
                            &a.original,
                            self.utc_offset_s,
                        ))));
                    }
                    Some(r) => {
                        let msg = format!(
                            "{} is {}: only pending actions can be edited",
                            r.action.id, r.action.state
                        );
                        self.set_status(Level::Warn, msg);
                    }
                    None => self.set_status(Level::Warn, "nothing selected"),
                }
                vec![]
            }
            Command::Mark => {
                self.actions.toggle_mark();
                self.move_cursor(Command::Down);
                vec![]
            }
            Command::Range => {
                let was = self.actions.range_anchor.is_some();
                let n = self.actions.range();
                if was {
                    self.set_status(Level::Info, format!("marked {n} in range"));
                } else {
                    self.set_status(Level::Info, "range started: move, then v again");
                }
                vec![]
            }
            Command::ClearMarks => {
                self.actions.marks.clear();
                self.actions.range_anchor = None;
                vec![]
            }
            Command::ApproveMarked => {
                if self.actions.marks.is_empty() {
                    self.set_status(Level::Warn, "no marks: space marks, v marks a range");
                    return vec![];
                }
                let ids = self.actions.targets();
                let rows: Vec<_> = ids
                    .iter()
                    .filter_map(|id| self.actions.row_by_id(id))
                    .collect();
                let plan = bulk_plan(&rows);
                self.popup = Some(Popup::Bulk {
                    plan,
                    typed: String::new(),
                    opened_at: self.now,
                    scroll: 0,
                });
                vec![]
            }
            Command::SendToBatch => {
                let ids = self.actions.targets();
                if ids.is_empty() {
                    self.set_status(Level::Warn, "nothing pending to send");
                    return vec![];
                }
                vec![Effect::Pipeline(PipelineEffect::SendToBatch(ids))]
            }
            Command::UndoSend => self.undo_send(),
            Command::DetailDown | Command::DetailUp => {
                let by = if cmd == Command::DetailDown { 3 } else { -3 };
                match self.tab {
                    Tab::Audit => self.audit.scroll_evidence(by),
                    _ => self.actions.scroll_detail(by),
                }
                vec![]
            }
            Command::Trust => {
                self.popup = Some(Popup::Trust {
                    cursor: 0,
                    opened_at: self.now,
                });
                vec![]
            }
            Command::Calibration => {
                self.popup = Some(Popup::Calibration { kind: 0 });
                vec![]
            }
            Command::ExecuteApproved => {
                // "Now" includes the outbox: X is the send-now key. What waits there runs
                // even if the last reload has not shown it as approved yet.
                let mut ids: Vec<String> = self.outbox.drain();
                for id in self.actions.approved_ids() {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                if ids.is_empty() {
                    self.set_status(Level::Warn, "no approved actions to execute");
                    return vec![];
                }
                vec![Effect::Pipeline(PipelineEffect::ExecuteApproved(ids))]
            }
            Command::NextView => {
                self.set_view(self.actions.view.next());
                vec![]
            }
            Command::Increase | Command::Decrease => self.perm_step(cmd == Command::Increase),
            Command::Connect => self.connect_row(),
            Command::Verify => {
                self.audit.verify = VerifyState::Running;
                vec![Effect::Store(StoreEffect::VerifyAudit)]
            }
            Command::Export => vec![Effect::Store(StoreEffect::ExportAudit)],
            Command::Compose => {
                self.chat.composing = true;
                vec![]
            }
            Command::Confirm | Command::Deny => self.answer_chat_step_up(cmd == Command::Confirm),
            Command::CancelTurn => {
                if self.chat.running {
                    vec![Effect::Chat(ChatEffect::CancelTurn)]
                } else {
                    vec![]
                }
            }
            Command::ToggleFold => {
                self.chat.unfolded = !self.chat.unfolded;
                vec![]
            }
            Command::None => vec![],
        }
    }

    /// A click on a list row selects it.
    fn click_row(&mut self, col: u16, row: u16) {
        let area = ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1);
        let Some(rows) = super::view::list_rows(self.tab, area) else {
            return;
        };
        if col < rows.x || col >= rows.x + rows.width || row < rows.y || row >= rows.y + rows.height
        {
            return;
        }
        let h = rows.height as usize;
        let (cursor, len) = match self.tab {
            Tab::Actions => (&mut self.actions.cursor, self.actions.visible.len()),
            Tab::Audit => (&mut self.audit.cursor, self.audit.rows.len()),
            _ => return,
        };
        let pos = super::view::window_start(*cursor, h) + (row - rows.y) as usize;
        if pos < len {
            *cursor = pos;
        }
    }

    pub fn set_view(&mut self, v: View) {
        self.actions.view = v;
        self.actions.cursor = 0;
        self.actions.refilter();
        self.set_status(Level::Info, format!("view: {}", v.name()));
    }

    /// Moves the list cursor; on the Audit tab, pages follow it (and `g`/`G` jump to
    /// the newest and oldest page).
    fn move_cursor(&mut self, cmd: Command) -> Vec<Effect> {
        let (cursor, len) = match self.tab {
            Tab::Actions => (&mut self.actions.cursor, self.actions.visible.len()),
            Tab::Audit => match cmd {
                Command::Top => return self.audit.top(),
                Command::Bottom => return self.audit.bottom(),
                _ => (&mut self.audit.cursor, self.audit.rows.len()),
            },
            Tab::Permissions => (&mut self.perms.cursor, perm_rows().len()),
            Tab::Chat => {
                // Rows scrolled back from the newest; the view clamps it to the top.
                let back = &mut self.chat.scroll_back;
                *back = match cmd {
                    Command::Up => back.saturating_add(1),
                    Command::Down => back.saturating_sub(1),
                    Command::PageUp => back.saturating_add(10),
                    Command::PageDown => back.saturating_sub(10),
                    Command::Top => usize::MAX / 2,
                    Command::Bottom => 0,
                    _ => *back,
                };
                return vec![];
            }
        };
        let last = len.saturating_sub(1);
        // A page is what the list shows at this terminal size (24 rows over SSH shows
        // far fewer than 10), so PageDown lands on the next window's first row.
        let area = ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1);
        let page = super::view::list_rows(self.tab, area)
            .map_or(10, |r| r.height as usize)
            .max(1);
        // Whether the move ran into the end (`Some(true)`) or the start of the list.
        let past = match cmd {
            Command::Down | Command::PageDown if len == 0 || *cursor == last => Some(true),
            Command::Up | Command::PageUp if *cursor == 0 => Some(false),
            _ => None,
        };
        *cursor = match cmd {
            Command::Down => (*cursor + 1).min(last),
            Command::Up => cursor.saturating_sub(1),
            Command::Top => 0,
            Command::Bottom => last,
            Command::PageDown => (*cursor + page).min(last),
            Command::PageUp => cursor.saturating_sub(page),
            _ => *cursor,
        };
        if self.tab == Tab::Audit {
            return self.audit.follow(past);
        }
        if self.tab == Tab::Actions
            && let Some(before) = self.actions.more()
        {
            return vec![Effect::Store(StoreEffect::LoadOlderActions { before })];
        }
        vec![]
    }

    fn approve_current(&mut self) -> Vec<Effect> {
        let Some(r) = self.actions.current() else {
            self.set_status(Level::Warn, "nothing selected");
            return vec![];
        };
        let a = &r.action;
        if !is_pending(a.state) {
            let msg = format!(
                "{} is {}: only pending actions can be approved",
                a.id, a.state
            );
            self.set_status(Level::Warn, msg);
            return vec![];
        }
        // A write to a deal read from Salesforce (it carries the record's revision)
        // needs the salesforce account, whatever the kind needs by itself.
        let needs = a.kind().connection().or(match &a.params {
            crate::core::domain::ActionParams::UpdateDeal {
                revision: Some(_), ..
            }
            | crate::core::domain::ActionParams::CloseDeal {
                revision: Some(_), ..
            } => Some(crate::core::domain::Connection::Salesforce),
            _ => None,
        });
        if let Some(connection) = needs.filter(|c| {
            self.perms
                .perms
                .as_ref()
                .is_some_and(|p| p.disconnected.contains(c))
        }) {
            self.popup = Some(Popup::NeedsAccount {
                connection,
                what: format!("{} ({})", a.title, a.kind()),
            });
            return vec![];
        }
        let id = a.id.clone();
        let version = a.version;
        let irreversible = !a.kind().risk().reversible;
        match r.decision.gate().clone() {
            // Approving one after another faster than anyone reads: the next thing that
            // cannot be undone gets the full confirmation, once.
            Gate::Allow | Gate::Review
                if irreversible && self.pace.too_fast(self.now).is_some() =>
            {
                let n = self.pace.too_fast(self.now).unwrap_or(super::pace::LIMIT);
                self.pace.reset();
                let lines = what_will_happen(a);
                self.popup = Some(Popup::StepUp {
                    id,
                    version,
                    lines,
                    gate: format!(
                        "pace check: {n} approvals in {} s; this one cannot be undone",
                        super::pace::WINDOW_MS / 1000
                    ),
                    opened_at: self.now,
                    scroll: 0,
                });
                vec![]
            }
            Gate::Allow | Gate::Review => {
                self.set_status(Level::Info, format!("approving {id}…"));
                vec![Effect::Store(StoreEffect::Approve {
                    seen: [(id.clone(), version)].into(),
                    ids: vec![id],
                    stepped_up: vec![],
                })]
            }
            g @ Gate::StepUp { .. } => {
                let lines = what_will_happen(a);
                self.popup = Some(Popup::StepUp {
                    id,
                    version: a.version,
                    lines,
                    gate: g.to_string(),
                    opened_at: self.now,
                    scroll: 0,
                });
                vec![]
            }
            Gate::Ciba { approver, reason } => {
                self.set_status(
                    Level::Warn,
                    format!("{id} needs approval on {} device ({reason}): press b to send it to the batch", approver.whose()),
                );
                vec![]
            }
            Gate::Deny { reason } => {
                self.set_status(
                    Level::Error,
                    format!("{id} is denied by your permissions: {reason}"),
                );
                vec![]
            }
        }
    }

    fn connect_row(&mut self) -> Vec<Effect> {
        if self.tab != Tab::Permissions {
            return vec![];
        }
        match perm_rows().get(self.perms.cursor).copied() {
            Some(PermRow::Account(connection)) => {
                self.popup = Some(Popup::Connect {
                    connection,
                    url: None,
                    pasted: String::new(),
                });
                vec![Effect::Pipeline(PipelineEffect::ConnectAccount(connection))]
            }
            _ => {
                self.set_status(Level::Info, "c connects: move to an account row");
                vec![]
            }
        }
    }

    fn on_connect(&mut self, ev: super::msg::ConnectEvent) -> Vec<Effect> {
        use super::msg::ConnectEvent;
        match ev {
            ConnectEvent::Link {
                connection,
                url,
                plan,
            } => {
                if let Some(Popup::Connect {
                    connection: c,
                    url: u,
                    ..
                }) = &mut self.popup
                    && *c == connection
                {
                    *u = Some((url, plan));
                }
                vec![]
            }
            ConnectEvent::Done { connection, result } => {
                if matches!(self.popup, Some(Popup::Connect { .. })) {
                    self.popup = None;
                }
                match result {
                    Ok(line) => {
                        self.set_status(Level::Ok, line);
                        // Connected at Auth0: dealflow's own switch follows (audited).
                        let off = self
                            .perms
                            .perms
                            .as_ref()
                            .is_some_and(|p| p.disconnected.contains(&connection));
                        if off {
                            return vec![Effect::Store(StoreEffect::ChangePermissions(
                                crate::core::permissions::PermissionChange::SetConnected {
                                    connection,
                                    connected: true,
                                },
                            ))];
                        }
                    }
                    Err(e) => self.set_status(Level::Error, e),
                }
                vec![Effect::Store(StoreEffect::LoadActions)]
            }
        }
    }

    fn perm_step(&mut self, up: bool) -> Vec<Effect> {
        if self.tab != Tab::Permissions {
            return vec![];
        }
        let Some(p) = &self.perms.perms else {
            return vec![];
        };
        let Some(row) = perm_rows().get(self.perms.cursor).copied() else {
            return vec![];
        };
        if row.typed() {
            self.popup = Some(Popup::PermValue {
                row,
                text: String::new(),
            });
            return vec![];
        }
        let Some(change) = row.step(p, up) else {
            return vec![];
        };
        // Shown as it will be at once, so the next key steps from here: `l l l` is three
        // steps, not the same step three times. The store's answer (and the reload after
        // it) is still what counts; a refused change comes back as it was.
        let mut shown = p.clone();
        if shown.apply(&change).is_ok() {
            self.perms.perms = Some(shown);
        }
        vec![Effect::Store(StoreEffect::ChangePermissions(change))]
    }

    /// The step-up box's fit at the current terminal size; `None` before the first
    /// `Resize`, when nothing has been drawn to measure against (and nothing confirmed).
    fn step_up_fit(&self) -> Option<crate::tui::view::chat::StepUpFit> {
        let p = self.chat.step_up.as_ref()?;
        let (w, h) = self.size;
        if w == 0 || h == 0 {
            return None;
        }
        let [_, body, _, _] =
            crate::tui::view::screen_layout(ratatui::layout::Rect::new(0, 0, w, h));
        Some(crate::tui::view::chat::step_up_fit(&p.summary, body))
    }

    fn scroll_step_up(&mut self, by: isize) -> Vec<Effect> {
        // Keys typed on through the prompt's first second scroll nothing either.
        if self
            .chat
            .step_up
            .as_ref()
            .is_some_and(|p| self.now - p.opened_at < INPUT_GUARD_MS)
        {
            self.say_input_guard();
            return vec![];
        }
        let max = self
            .step_up_fit()
            .map_or(0, |f| f.rows.saturating_sub(f.shown));
        if let Some(p) = &mut self.chat.step_up {
            p.scroll = p.scroll.saturating_add_signed(by).min(max);
        }
        vec![]
    }

    fn answer_chat_step_up(&mut self, confirmed: bool) -> Vec<Effect> {
        let Some(p) = &self.chat.step_up else {
            return vec![];
        };
        if self.now - p.opened_at < INPUT_GUARD_MS {
            self.say_input_guard();
            return vec![];
        }
        // "Confirm exactly this" means all of it: a yes waits until the last row of the
        // payload has been on screen. A no never waits.
        let fit = self.step_up_fit();
        if confirmed && fit.is_none_or(|f| f.shown == 0) {
            self.set_status(
                Level::Warn,
                "the terminal is too small to show what you would confirm: enlarge it, or n to refuse",
            );
            return vec![];
        }
        if confirmed
            && let Some(fit) = fit
            && p.scroll + fit.shown < fit.rows
        {
            self.set_status(
                Level::Warn,
                format!(
                    "read it all first: {} more row(s) below (j / space / G scroll)",
                    fit.rows - p.scroll - fit.shown
                ),
            );
            return vec![];
        }
        let p = p.clone();
        self.chat.step_up = None;
        self.chat.record_step_up(&p, confirmed);
        vec![Effect::Chat(ChatEffect::AnswerStepUp {
            action_id: p.action_id,
            confirmed,
        })]
    }

    pub fn palette_items(&self, query: &str) -> Vec<PaletteItem> {
        let q = query.to_lowercase();
        let mut seen = BTreeSet::new();
        let mut items: Vec<PaletteItem> = self
            .keymap
            .help()
            .into_iter()
            .filter(|r| seen.insert(r.command))
            .map(|r| PaletteItem::Run(r.command, r.desc))
            .collect();
        items.extend(View::ALL.into_iter().map(PaletteItem::View));
        items.retain(|i| q.is_empty() || i.label().to_lowercase().contains(&q));
        items
    }

    fn on_filter_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let (filter, is_actions) = match self.tab {
            Tab::Audit => (&mut self.audit.filter, false),
            _ => (&mut self.actions.filter, true),
        };
        match k.code {
            KeyCode::Enter => self.filtering = false,
            KeyCode::Esc => {
                filter.clear();
                self.filtering = false;
            }
            KeyCode::Backspace => {
                filter.pop();
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => filter.push(c),
            _ => return vec![],
        }
        if is_actions {
            self.actions.refilter();
            vec![]
        } else {
            self.audit.refilter()
        }
    }

    fn on_compose_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        match k.code {
            KeyCode::Esc => self.chat.composing = false,
            KeyCode::Backspace => {
                self.chat.input.pop();
            }
            KeyCode::Enter => {
                let text = self.chat.input.trim().to_string();
                self.chat.input.clear();
                if text.is_empty() {
                    return vec![];
                }
                self.chat.lines.push(ChatLine::User(text.clone()));
                // A new question: follow the conversation to its newest line again.
                self.chat.scroll_back = 0;
                self.chat.running = true;
                return vec![Effect::Chat(ChatEffect::StartChatTurn(text))];
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.chat.input.push(c)
            }
            _ => {}
        }
        vec![]
    }
}

/// Pasted or agent-supplied text must not smuggle terminal control sequences.
pub fn strip_controls(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect()
}
