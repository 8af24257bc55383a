//! The two enums at the TUI's boundary: [`Msg`] in (keys, ticks, background results) and
//! [`Effect`] out (work the app asks a runtime to do). `App::update(Msg) -> Vec<Effect>`
//! is the only place state changes; effects are data, so tests can record or run them.

use crate::core::agent::Io;
use crate::core::audit::ChainBreak;
use crate::core::consent::Decision;
use crate::core::domain::{Action, ActionParams, Millis};
use crate::core::permissions::{PermissionChange, Permissions};
use ratatui::crossterm::event::{KeyEvent, MouseEvent};
use std::collections::BTreeMap;

/// Everything that can change the UI state.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key press from the terminal (release/repeat events are dropped by the loop).
    Key(KeyEvent),
    /// A mouse event (only when `ui.mouse = true`).
    Mouse(MouseEvent),
    /// Bracketed paste.
    Paste(String),
    /// The terminal was resized to (cols, rows).
    Resize(u16, u16),
    /// The slow tick (about every 2 s): refreshes the queue and countdowns.
    Tick,
    /// The fast tick (a few times a second), only while something counts down by the
    /// second (the outbox): runs what is due and redraws the countdown.
    Clock,
    /// The queue and the permissions it was gated with, fresh from the store.
    ActionsLoaded {
        /// Each action with the gate it faces, decided from the store's facts.
        gated: Vec<(Action, Decision)>,
        permissions: Box<Permissions>,
    },
    /// The newest pending actions, with their gates, for the first frame: the whole
    /// queue follows (`Msg::ActionsLoaded`) and replaces them.
    FirstActions {
        gated: Vec<(Action, Decision)>,
        permissions: Box<Permissions>,
    },
    /// How many finished actions the store holds in all, sent with every reload: the
    /// queue holds only a window of them, and its title says how many of how many.
    FinishedTotal(usize),
    /// Older finished actions (`Effect::LoadOlderActions`), each with its gate, newest
    /// finished first; `asked` is the bound they were asked below.
    OlderActionsLoaded {
        gated: Vec<(Action, Decision)>,
        asked: (Millis, String),
    },
    /// The background service: `Some((running, last proposed))`, or `None` when none
    /// runs (or it stopped cleanly).
    ServiceSeen(Option<(bool, Option<Millis>)>),
    /// Pushes from reps' batches waiting on this user's phone as team lead (`None`: not
    /// a team store, or it could not be read).
    LeadWaiting(Option<usize>),
    /// A store read failed; shown on the status line.
    LoadFailed(String),
    /// An action ran through the pipeline (or could not): a line for the status bar.
    Executed {
        id: String,
        result: Result<String, String>,
    },
    /// A line from a background job (batch, sign-in), shown on the status bar.
    Status { ok: bool, text: String },
    /// The outcome of one human decision through `runtime::review::Reviewer`.
    Reviewed {
        id: String,
        verb: Verb,
        result: Result<Box<Action>, String>,
    },
    /// After a decision on several actions: how many went through, and each failure.
    ReviewSummary {
        verb: Verb,
        ok: usize,
        failed: Vec<(String, String)>,
    },
    /// A permission change was saved (and audited) or refused.
    PermissionsSaved(Result<Box<Permissions>, String>),
    /// A page of the audit log for the Audit tab (`Effect::LoadAudit`).
    AuditPage(Result<Box<super::audit::AuditPage>, String>),
    /// The background chain verification finished: `Ok(Ok(n))` = n entries verified.
    AuditVerified(Result<Result<i64, ChainBreak>, String>),
    /// An export finished: `Ok(message)` or the error.
    Exported(Result<String, String>),
    /// This effect cannot run here, and the text says why and what to do: not signed
    /// in (no pipeline yet, or sign-in failed), so nothing can execute or reach chat.
    Unavailable(String),
    /// The signed-in services were built or could not be (`Err(why)`): what the app
    /// held for them is released, to run or to be answered "not signed in".
    ServicesReady(Result<Ready, String>),
    /// What the chat's IO learnt (model text, a gate's or a device's answer, a tool's
    /// result), for the machine the Chat tab holds.
    Chat(crate::core::agent::Event),
    /// The answer to [`Effect::RequestUnlock`]: `Ok(how it was confirmed)` or why not.
    Unlock(Result<String, String>),
    /// Progress of an account connect started with [`Effect::ConnectAccount`].
    Connect(ConnectEvent),
    /// The audit log replayed into calibration; `Ok(None)`: unchanged since the last.
    Calibrated(Result<Option<Box<super::trust::Calibrated>>, String>),
}

/// The signed-in services as built: what to say, and whether chat is the offline planner.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    pub text: String,
    pub offline_chat: bool,
}

/// What a connect reports: the link to open, then how it ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectEvent {
    Link {
        connection: crate::core::domain::Connection,
        url: String,
        /// What the connect adds and keeps ([`crate::auth::connect::ScopePlan::describe`]).
        plan: String,
    },
    /// `Ok(summary)` (connected, with its scopes) or why not.
    Done {
        connection: crate::core::domain::Connection,
        result: Result<String, String>,
    },
}

/// Which human decision a [`Msg::Reviewed`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Approve,
    Reject,
    Edit,
    Withdraw,
}

impl Verb {
    pub fn past(self) -> &'static str {
        match self {
            Verb::Approve => "approved",
            Verb::Reject => "rejected",
            Verb::Edit => "edited",
            Verb::Withdraw => "withdrawn",
        }
    }
}

/// Work the app asks its runtime to do, by who runs it (`tui::driver` has the one
/// `match`): the store, the signed-in pipeline, the chat agent's IO, the terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Store(StoreEffect),
    /// Needs the signed-in services; held by the app while they are being built.
    Pipeline(PipelineEffect),
    /// The chat machine's IO (`runtime::chat::ChatIo`); needs the signed-in services,
    /// held by the app while they are being built.
    Chat(crate::core::agent::Io),
    Ui(UiEffect),
}

/// What the store, the consent engine and the `Reviewer` serve (`tui::executor`), off the
/// UI task: writes and reloads one at a time in order, slow reads on their own.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEffect {
    /// The newest pending actions only (`Msg::FirstActions`), so the first frame shows
    /// the queue without waiting for a long one to be read and gated whole.
    LoadFirstActions,
    /// Reload the queue and permissions (`Msg::ActionsLoaded`): every pending action
    /// and the most recently finished ones (`actions::FINISHED_PAGE`).
    LoadActions,
    /// The next page of finished actions, those finished before `before`
    /// (`(updated_at, id)` of the oldest held): `Msg::OlderActionsLoaded`.
    LoadOlderActions { before: (Millis, String) },
    /// Approve through `Reviewer::approve` (`Msg::Reviewed` per id, then a reload).
    /// `stepped_up` lists the ids whose step-up the person confirmed explicitly (the
    /// inline prompt, or the typed bulk confirmation that counted them as step-up);
    /// any other id that turns out to need step-up is refused by the Reviewer.
    /// `seen` holds the version of each action the person was shown; an action that
    /// changed since (edited elsewhere) is refused rather than approved unseen.
    Approve {
        ids: Vec<String>,
        stepped_up: Vec<String>,
        seen: BTreeMap<String, i64>,
    },
    /// Take an approval back before it runs (the outbox's undo) through
    /// `Reviewer::withdraw`: the action returns to the queue.
    Withdraw(String),
    /// Reject through `Reviewer::reject`.
    Reject {
        ids: Vec<String>,
        reason: Option<String>,
    },
    /// Replace the payload through `Reviewer::edit`, if the action is still at the
    /// `version` the editor opened (no silent overwrite of someone else's edit).
    Edit {
        id: String,
        version: i64,
        params: ActionParams,
    },
    /// Save a permission change through `Store::change_permissions` (audited).
    ChangePermissions(PermissionChange),
    /// Replay the audit log into calibration (`Msg::Calibrated`), unless its head is
    /// still `known_head`.
    LoadCalibration { known_head: Option<i64> },
    /// Accept a calibration nudge as a time-boxed auto-approve rule: the person's own
    /// permission change, audited with the evidence that led to it.
    AcceptNudge(Box<crate::core::calibration::Nudge>),
    /// Read a page of the audit log for the Audit tab (`Msg::AuditPage`).
    LoadAudit(super::audit::AuditFetch),
    /// Verify the hash chain in the background (`Msg::AuditVerified`).
    VerifyAudit,
    /// Write the audit log as JSONL to a file in the data dir (`Msg::Exported`).
    ExportAudit,
    /// Record a session event (lock, unlock) in the audit log.
    AuditSession {
        event: String,
        outcome: String,
        detail: serde_json::Value,
    },
}

impl StoreEffect {
    /// Read-only and possibly long (a replay of the whole log, a search or a rare kind
    /// walked on Redis): never queued in front of a decision such as an undo. Audit
    /// pages carry a generation, so a late one is dropped.
    pub fn is_slow_read(&self) -> bool {
        matches!(
            self,
            StoreEffect::VerifyAudit
                | StoreEffect::ExportAudit
                | StoreEffect::LoadAudit(_)
                | StoreEffect::LoadOlderActions { .. }
                | StoreEffect::LoadCalibration { .. }
        )
    }
}

/// What needs the signed-in pipeline, session or device (`tui::services`).
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineEffect {
    /// Execute approved actions.
    ExecuteApproved(Vec<String>),
    /// Send actions to the device as one CIBA batch.
    SendToBatch(Vec<String>),
    /// Ask to unlock the idle lock: a CIBA request to the user's phone; not signed in,
    /// the lock lifts on the keypress and says so.
    RequestUnlock,
    /// Connect (or re-consent) a provider account through Auth0's My Account API: a link
    /// to open in a browser, then the redirect (loopback, or pasted).
    ConnectAccount(crate::core::domain::Connection),
    /// The address the browser ended on, pasted (a browser on another machine).
    ConnectRedirect(String),
    /// Stop waiting for the connect redirect.
    CancelConnect,
}

/// What the terminal itself does (`tui::driver`).
#[derive(Debug, Clone, PartialEq)]
pub enum UiEffect {
    /// Ring the bell and send a desktop notification (OSC 9/777).
    Notify { title: String, body: String },
    /// Put text on the terminal's clipboard (OSC 52), which works over SSH where no
    /// local clipboard does.
    Copy(String),
    /// Leave the TUI.
    Quit,
}

impl From<StoreEffect> for Effect {
    fn from(e: StoreEffect) -> Effect {
        Effect::Store(e)
    }
}

impl From<PipelineEffect> for Effect {
    fn from(e: PipelineEffect) -> Effect {
        Effect::Pipeline(e)
    }
}

impl From<UiEffect> for Effect {
    fn from(e: UiEffect) -> Effect {
        Effect::Ui(e)
    }
}

impl Effect {
    /// Whether it needs the signed-in services (held while they are being built).
    pub fn needs_services(&self) -> bool {
        matches!(self, Effect::Pipeline(_) | Effect::Chat(_))
    }

    /// A few words for the status line (never the payload: it may hold a draft).
    pub fn describe(&self) -> String {
        let n = |ids: &[String]| {
            if ids.len() == 1 {
                "1 action".to_string()
            } else {
                format!("{} actions", ids.len())
            }
        };
        match self {
            Effect::Pipeline(p) => match p {
                PipelineEffect::ExecuteApproved(ids) => format!("execution of {}", n(ids)),
                PipelineEffect::SendToBatch(ids) => format!("device batch of {}", n(ids)),
                PipelineEffect::RequestUnlock => "unlock request".into(),
                PipelineEffect::ConnectAccount(c) => format!("connect {}", c.as_str()),
                PipelineEffect::ConnectRedirect(_) => "connect redirect".into(),
                PipelineEffect::CancelConnect => "connect cancel".into(),
            },
            Effect::Chat(io) => match io {
                Io::StartStream { .. } => "chat message".into(),
                Io::AbortStream => "chat cancel".into(),
                Io::SubmitTool { .. } => "tool call".into(),
                Io::Execute { .. } => "tool run".into(),
                Io::CancelCiba { .. } => "device request cancel".into(),
                Io::Decline { .. } => "step-up answer".into(),
                Io::TurnEnded(_) => "turn end".into(),
            },
            Effect::Store(s) => match s {
                StoreEffect::LoadActions => "reload".into(),
                StoreEffect::LoadFirstActions => "first load".into(),
                StoreEffect::LoadOlderActions { .. } => "older finished actions".into(),
                StoreEffect::Approve { ids, .. } => format!("approval of {}", n(ids)),
                StoreEffect::Reject { ids, .. } => format!("rejection of {}", n(ids)),
                StoreEffect::Withdraw(id) => format!("withdrawal of {id}"),
                StoreEffect::Edit { id, .. } => format!("edit of {id}"),
                StoreEffect::ChangePermissions(_) => "permission change".into(),
                StoreEffect::LoadCalibration { .. } => "calibration".into(),
                StoreEffect::AcceptNudge(_) => "rule from a nudge".into(),
                StoreEffect::LoadAudit(_) => "audit load".into(),
                StoreEffect::VerifyAudit => "audit verification".into(),
                StoreEffect::ExportAudit => "audit export".into(),
                StoreEffect::AuditSession { .. } => "session audit".into(),
            },
            Effect::Ui(u) => match u {
                UiEffect::Notify { .. } => "notification".into(),
                UiEffect::Copy(_) => "copy to the clipboard".into(),
                UiEffect::Quit => "quit".into(),
            },
        }
    }
}
