#![allow(clippy::unwrap_used)]
//! Headless TUI tests: key sequences fed to the real `App` whose effects run through the
//! real executor against a seeded SQLite store in a tempdir; assertions on screen text,
//! on the store and on the audit log. Snapshots (insta + TestBackend) of every tab and
//! popup at 120x36. Where a test sends a back-end message by hand (a chat event, a
//! connect result) it tests the model's handling of that message; the wiring that
//! produces it runs for real in tests/tui_backend.rs and tests/tui_pty.rs.

use dealflow::core::agent::{ConsentGiven, Event, GateOutcome, Io, StopKind, ToolCall};
use dealflow::core::consent::Evidence;
use dealflow::core::domain::ActionKind;
use dealflow::core::domain::{Action, ActionParams, ActionState, Email, Surface};
use dealflow::core::permissions::{Autonomy, PermissionChange};
use dealflow::store::{SqliteStore, Store};
use dealflow::tui::app::{App, Popup};
use dealflow::tui::clock::ManualClock;
use dealflow::tui::executor::Executor;
use dealflow::tui::msg::{Effect, Msg};
use dealflow::tui::msg::{PipelineEffect, StoreEffect, UiEffect};
use dealflow::tui::{TuiOptions, build, view};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::VecDeque;
use std::sync::Arc;

const NOW: i64 = 1_764_000_000_000;

struct H {
    app: App,
    exec: Executor,
    clock: ManualClock,
    store: Arc<dyn Store>,
    notified: Vec<Effect>,
    /// Every id the app asked to execute, in order.
    executed: Vec<String>,
    /// `Some` once the test plays the chat runtime by hand ([`H::hand_chat`]): what the
    /// chat machine asked for, in order, for the test to answer.
    chat_io: Option<Vec<Io>>,
    _dir: tempfile::TempDir,
}

impl H {
    fn new() -> H {
        H::with_undo_send(None)
    }

    /// With the outbox on (`ui.undo_send`).
    fn with_undo_send(undo_send: Option<std::time::Duration>) -> H {
        H::with_setup(undo_send, |_| {})
    }

    /// `setup` runs on the seeded store before the app starts (what an earlier session
    /// left behind).
    fn with_setup(undo_send: Option<std::time::Duration>, setup: impl FnOnce(&dyn Store)) -> H {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
        dealflow::sandbox::demo::seed(store.as_ref(), NOW).unwrap();
        setup(store.as_ref());
        let clock = ManualClock::new(NOW);
        let opts = TuiOptions {
            sandbox: true,
            tenant: None,
            theme: "dark".into(),
            mouse: false,
            notify: true,
            config_dir: None,
            export_dir: dir.path().to_path_buf(),
            wiring: None,
            max_iterations: 8,
            idle_lock: None,
            undo_send,
            service_status: None,
            lead_waiting: None,
        };
        let (mut app, mut exec) = build(store.clone(), &opts, Arc::new(clock.clone()));
        // A fixed identity for snapshots and audit assertions. This does not stand in for
        // where the actor comes from (the verified sign-in and the uid, never $USER):
        // consent_attacks::the_actor_is_the_identity_and_uid_not_user and the pty tests
        // run the real binary for that.
        app.session.actor = "user:demo".into();
        app.session.store = "sqlite test.db".into();
        app.status = None;
        exec.reviewer.actor = "user:demo".into();
        let mut h = H {
            app,
            exec,
            clock,
            store,
            notified: vec![],
            executed: vec![],
            chat_io: None,
            _dir: dir,
        };
        let init = h.app.init();
        h.run_effects(init);
        // The size `terminal()` draws at, as the event loop reports it before any key:
        // a confirmation is never taken on a terminal of unknown size.
        h.send(Msg::Resize(120, 36));
        h
    }

    fn run_effects(&mut self, effects: Vec<Effect>) {
        let mut q: VecDeque<Msg> = VecDeque::new();
        for e in effects {
            self.effect(e, &mut q);
        }
        while let Some(m) = q.pop_front() {
            for e in self.app.update(m) {
                self.effect(e, &mut q);
            }
        }
    }

    fn effect(&mut self, e: Effect, q: &mut VecDeque<Msg>) {
        if matches!(e, Effect::Ui(UiEffect::Notify { .. })) {
            self.notified.push(e);
            return;
        }
        if let Effect::Pipeline(PipelineEffect::ExecuteApproved(ids)) = &e {
            self.executed.extend(ids.iter().cloned());
        }
        if let (Effect::Chat(io), Some(log)) = (&e, self.chat_io.as_mut()) {
            log.push(io.clone());
            return;
        }
        q.extend(dealflow::tui::driver::run_headless(&self.exec, e));
    }

    fn send(&mut self, m: Msg) {
        let effects = self.app.update(m);
        self.run_effects(effects);
    }

    fn code(&mut self, code: KeyCode) {
        self.send(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }

    fn ctrl(&mut self, c: char) {
        self.send(Msg::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::CONTROL,
        )));
    }

    fn keys(&mut self, s: &str) {
        for c in s.chars() {
            self.code(KeyCode::Char(c));
        }
    }

    fn terminal(&self) -> Terminal<TestBackend> {
        let mut t = Terminal::new(TestBackend::new(120, 36)).unwrap();
        t.draw(|f| view::render(&self.app, f)).unwrap();
        t
    }

    fn screen(&self) -> String {
        self.terminal().backend().to_string()
    }

    fn action(&self, id: &str) -> Action {
        self.store.get_action(id).unwrap()
    }

    fn audit_events(&self) -> Vec<(String, String, Option<String>)> {
        self.store
            .audit_page(0, 1000)
            .unwrap()
            .into_iter()
            .map(|e| (e.event, e.actor, e.action_id))
            .collect()
    }

    /// Moves the cursor to the row whose id is `id` (via the filter).
    /// From here on the test plays the chat runtime (the model's stream, the gate, the
    /// device): the machine in the Chat tab is the real one.
    fn hand_chat(&mut self) {
        self.chat_io = Some(vec![]);
    }

    /// On the Chat tab, sends `text` and has the model answer with these tool calls:
    /// the machine then asks for the first call's gate.
    fn chat_turn(&mut self, text: &str, calls: &[(&str, &str, serde_json::Value)]) {
        self.keys("2");
        self.keys("i");
        self.keys(text);
        self.code(KeyCode::Enter);
        self.code(KeyCode::Esc);
        for (id, name, input) in calls {
            self.send(Msg::Chat(Event::ToolUse(ToolCall {
                id: id.to_string(),
                name: name.to_string(),
                input: input.clone(),
            })));
        }
        if !calls.is_empty() {
            self.send(Msg::Chat(Event::StreamEnd(StopKind::ToolUse)));
        }
    }

    /// The gate's answer for `call_id`: confirm inline, `prompt` being what would happen.
    fn step_up(&mut self, call_id: &str, prompt: &str) {
        self.send(Msg::Chat(Event::Gate {
            call_id: call_id.into(),
            outcome: GateOutcome::StepUp {
                prompt: prompt.into(),
                reason: "step-up: send_email needs a yes".into(),
            },
        }));
    }

    fn select(&mut self, needle: &str) {
        self.keys("/");
        self.keys(needle);
        self.code(KeyCode::Enter);
    }
}

/// An autonomy change as `actor` made it (audited like any other).
fn set_autonomy(store: &dyn Store, kind: ActionKind, level: Autonomy, actor: &str) {
    change_permissions(
        store,
        dealflow::core::permissions::PermissionChange::SetAutonomy { kind, level },
        actor,
    );
}

/// A permission change as `actor` made it (audited like any other).
fn change_permissions(
    store: &dyn Store,
    change: dealflow::core::permissions::PermissionChange,
    actor: &str,
) {
    store
        .change_permissions(
            &change,
            dealflow::core::audit::NewAuditEntry {
                ts: NOW,
                actor: actor.into(),
                surface: None,
                event: "permissions.changed".into(),
                action_id: None,
                outcome: "ok".into(),
                detail: serde_json::json!({}),
            },
        )
        .unwrap();
}

fn reviewer() -> dealflow::runtime::review::Reviewer {
    dealflow::runtime::review::Reviewer {
        actor: "user:demo".into(),
        surface: Surface::ActionCenter,
    }
}

/// `n` copies of the Initech follow-up to `to` at confidence 0.95, each approved
/// unedited: the history a calibration nudge grows from.
fn approve_streak(h: &H, prefix: &str, to: &str, n: usize) {
    let template = h.action("act-demo-initech-followup");
    for i in 0..n {
        let mut a = template.clone();
        a.id = format!("{prefix}-{i}");
        a.confidence = 0.95;
        if let ActionParams::SendEmail(e) = &mut a.params {
            e.to = vec![to.into()];
        }
        a.original = a.params.clone();
        h.store.insert_action(&a).unwrap();
        reviewer()
            .approve(h.store.as_ref(), &a.id, false, NOW)
            .unwrap();
    }
}

#[test]
fn actions_tab_snapshot() {
    let h = H::new();
    let s = h.screen();
    assert!(s.contains("SANDBOX"));
    assert!(s.contains("4 pending consents"));
    insta::assert_snapshot!("actions_tab", h.terminal().backend());
}

#[test]
fn a_on_a_review_gated_action_approves_it_and_audits() {
    let mut h = H::new();
    h.select("initech");
    h.keys("a");
    let a = h.action("act-demo-initech-followup");
    assert_eq!(a.state, ActionState::Approved);
    assert!(
        matches!(a.evidence.map(|r| r.evidence), Some(Evidence::Reviewed { ref actor, .. }) if actor == "user:demo")
    );
    assert!(h.audit_events().contains(&(
        "action.approved".into(),
        "user:demo".into(),
        Some("act-demo-initech-followup".into())
    )));
    let s = h.screen();
    // Approving runs it; this headless app has no pipeline wired, and says so.
    assert!(s.contains("execution: not signed in"), "{s}");
    assert!(
        s.contains("reviewed by user:demo at 2025-11-24 16:00:00"),
        "{s}"
    );
    // An approval can still be withdrawn before it runs.
    h.keys("r");
    h.code(KeyCode::Enter);
    assert_eq!(
        h.action("act-demo-initech-followup").state,
        ActionState::Rejected
    );
}

#[test]
fn step_up_popup_ignores_keys_inside_the_guard_window() {
    let mut h = H::new();
    h.select("acme");
    h.keys("a");
    assert!(h.screen().contains("Step-up confirmation"));
    insta::assert_snapshot!("step_up_popup", h.terminal().backend());
    // Typed through within the first second: ignored, nothing approved.
    h.clock.advance(400);
    h.keys("y");
    assert!(h.screen().contains("Step-up confirmation"));
    assert_eq!(h.action("act-demo-acme-close").state, ActionState::Proposed);
    assert!(h.screen().contains("input guard"));
    // After the guard, y approves with step-up evidence.
    h.clock.advance(700);
    h.keys("y");
    let a = h.action("act-demo-acme-close");
    assert_eq!(a.state, ActionState::Approved);
    assert!(matches!(
        a.evidence.map(|r| r.evidence),
        Some(Evidence::SteppedUp { .. })
    ));
    assert!(!h.screen().contains("Step-up confirmation"));
}

#[test]
fn esc_cancels_a_step_up_even_inside_the_guard() {
    let mut h = H::new();
    h.select("acme");
    h.keys("a");
    h.code(KeyCode::Esc);
    assert!(!h.screen().contains("Step-up confirmation"));
    assert_eq!(h.action("act-demo-acme-close").state, ActionState::Proposed);
}

#[test]
fn reject_asks_for_a_reason_and_records_it() {
    let mut h = H::new();
    h.select("hooli");
    h.keys("r");
    h.keys("too pushy");
    insta::assert_snapshot!("reject_popup", h.terminal().backend());
    h.code(KeyCode::Enter);
    let a = h.action("act-demo-hooli-slack");
    assert_eq!(a.state, ActionState::Rejected);
    assert_eq!(a.outcome.as_deref(), Some("too pushy"));
    let last = h.store.audit_page(0, 1000).unwrap().pop().unwrap();
    assert_eq!(last.event, "action.rejected");
    assert_eq!(last.detail["reason"], "too pushy");
}

#[test]
fn bulk_approve_shows_a_summary_and_needs_the_typed_count() {
    let mut h = H::new();
    // Rows: stark-call, initech-followup, hooli-slack, acme-close (id descending).
    h.keys("    "); // mark all four (space marks and moves down)
    h.keys("A");
    match &h.app.popup {
        Some(Popup::Bulk { plan, .. }) => assert_eq!(
            plan.summary,
            "4 actions: 1 deal close, 1 email, 1 meeting, 1 Slack post; $75,000 in deals; 1 needs step-up"
        ),
        other => panic!("{other:?}"),
    }
    insta::assert_snapshot!("bulk_popup", h.terminal().backend());
    h.clock.advance(1500);
    h.keys("3");
    h.code(KeyCode::Enter);
    assert_eq!(h.action("act-demo-stark-call").state, ActionState::Proposed);
    h.code(KeyCode::Backspace);
    h.keys("4");
    h.code(KeyCode::Enter);
    for id in [
        "act-demo-stark-call",
        "act-demo-initech-followup",
        "act-demo-hooli-slack",
        "act-demo-acme-close",
    ] {
        assert_eq!(h.action(id).state, ActionState::Approved, "{id}");
    }
    assert!(matches!(
        h.action("act-demo-acme-close").evidence.map(|r| r.evidence),
        Some(Evidence::SteppedUp { .. })
    ));
}

#[test]
fn v_marks_a_range() {
    let mut h = H::new();
    h.keys("v");
    h.keys("jj");
    h.keys("v");
    assert_eq!(h.app.actions.marks.len(), 3);
    assert!(h.screen().contains("3 marked"));
}

#[test]
fn edit_shows_a_diff_and_saves_through_the_reviewer() {
    let mut h = H::new();
    h.select("initech");
    h.keys("e");
    for _ in 0..4 {
        h.code(KeyCode::Down);
    }
    h.keys("Hello again! ");
    let s = h.screen();
    assert!(s.contains("Diff against the AI's original"), "{s}");
    assert!(s.contains("+ Hello again! Hi Bill,"), "{s}");
    assert!(s.contains("- Hi Bill,"), "{s}");
    insta::assert_snapshot!("editor_popup", h.terminal().backend());
    // Undo takes back the last keystroke; redo restores it.
    h.ctrl('z');
    assert!(h.screen().contains("+ Hello again!Hi Bill,"));
    h.ctrl('y');
    assert!(h.screen().contains("+ Hello again! Hi Bill,"));
    h.ctrl('s');
    let a = h.action("act-demo-initech-followup");
    match &a.params {
        ActionParams::SendEmail(Email { body, .. }) => {
            assert!(body.starts_with("Hello again! Hi Bill,"), "{body}")
        }
        other => panic!("{other:?}"),
    }
    assert!(a.is_edited());
    assert!(
        h.audit_events()
            .iter()
            .any(|(e, _, _)| e == "action.edited")
    );
    assert!(
        h.screen()
            .contains("Edited: diff against the AI's original")
    );
}

#[test]
fn editor_refuses_an_invalid_draft() {
    let mut h = H::new();
    h.select("initech");
    h.keys("e");
    // Break the To: header.
    h.ctrl('e');
    for _ in 0..40 {
        h.code(KeyCode::Backspace);
    }
    h.ctrl('s');
    let s = h.screen();
    assert!(s.contains("to: at least one recipient is needed"), "{s}");
    assert!(!h.action("act-demo-initech-followup").is_edited());
}

#[test]
fn permissions_change_is_audited_and_invalid_changes_show_the_error() {
    let mut h = H::new();
    h.keys("3");
    insta::assert_snapshot!("permissions_tab", h.terminal().backend());
    // Row 0 is send_email: review -> step_up.
    h.keys("l");
    let p = h.store.load_permissions().unwrap();
    assert_eq!(p.autonomy_for(ActionKind::SendEmail), Autonomy::StepUp);
    let last = h.store.audit_page(0, 1000).unwrap().pop().unwrap();
    assert_eq!(last.event, "permissions.changed");
    assert_eq!(last.actor, "user:demo");
    // close-won below step_up is refused by the store; the error is shown.
    // (from the end: the two accounts, MCP, escalation, two approvers, the approver)
    h.keys("G");
    for _ in 0..6 {
        h.keys("k");
    }
    h.keys("h");
    let s = h.screen();
    assert!(s.contains("needs at least step_up"), "{s}");
    // A typed threshold.
    h.keys("gG");
    for _ in 0..9 {
        h.keys("k");
    }
    h.code(KeyCode::Enter);
    insta::assert_snapshot!("perm_value_popup", h.terminal().backend());
    h.keys("$60,000");
    h.code(KeyCode::Enter);
    assert_eq!(
        h.store.load_permissions().unwrap().step_up_amount_cents,
        6_000_000
    );
    // The last row: dealflow's own flag for the Slack account, audited.
    h.code(KeyCode::Esc);
    h.keys("G");
    h.keys("l");
    let p = h.store.load_permissions().unwrap();
    assert!(
        p.disconnected
            .contains(&dealflow::core::domain::Connection::Slack)
    );
    let last = h.store.audit_page(0, 1000).unwrap().pop().unwrap();
    assert_eq!(
        last.detail["summary"],
        "sign-in-with-slack: disconnected (no token exchange until reconnected)"
    );
}

#[test]
fn audit_tab_verifies_filters_and_exports() {
    let mut h = H::new();
    h.select("initech");
    h.keys("a");
    h.keys("4");
    let s = h.screen();
    assert!(s.contains("entries verified"), "{s}");
    insta::assert_snapshot!("audit_tab", h.terminal().backend());
    h.keys("/outcome:ok actor:user:demo");
    h.code(KeyCode::Enter);
    assert_eq!(h.app.audit.rows.len(), 1);
    h.keys("x");
    assert!(h.screen().contains("exported 5 audit entries"));
}

#[test]
fn chat_shell_is_honest_and_renders_agent_widgets() {
    let mut h = H::new();
    h.keys("2");
    h.keys("i");
    h.keys("who went quiet?");
    h.code(KeyCode::Enter);
    h.code(KeyCode::Esc);
    assert!(h.screen().contains("chat: not signed in — `dealflow init`"));
    assert!(!h.app.chat.running);
    // Signed in from here: the test plays the model, the gate and the device.
    h.hand_chat();
    h.chat_turn("who went quiet?", &[]);
    assert!(
        matches!(
            h.chat_io.as_ref().unwrap()[..],
            [Io::StartStream { iteration: 1, .. }]
        ),
        "{:?}",
        h.chat_io
    );
    h.send(Msg::Chat(Event::TextDelta("Bill at Initech.".into())));
    h.send(Msg::Chat(Event::ToolUse(ToolCall {
        id: "t1".into(),
        name: "list_deals".into(),
        input: serde_json::json!({}),
    })));
    h.send(Msg::Chat(Event::ToolUse(ToolCall {
        id: "t2".into(),
        name: "close_deal".into(),
        input: serde_json::json!({"deal_id": "deal-acme", "won": true}),
    })));
    h.send(Msg::Chat(Event::ToolUse(ToolCall {
        id: "t3".into(),
        name: "send_email".into(),
        input: serde_json::json!({"to": ["bill@initech.example"], "subject": "Hi", "body": "Hello"}),
    })));
    h.send(Msg::Chat(Event::StreamEnd(StopKind::ToolUse)));
    h.send(Msg::Chat(Event::Gate {
        call_id: "t1".into(),
        outcome: GateOutcome::Allow,
    }));
    h.send(Msg::Chat(Event::ToolResult {
        call_id: "t1".into(),
        result: Ok("6 deals\n{\"stage\":null}".into()),
    }));
    h.send(Msg::Chat(Event::Gate {
        call_id: "t2".into(),
        outcome: GateOutcome::Ciba {
            prompt: "Close Acme renewal as won".into(),
            reason: "over the threshold".into(),
            approver: "lead".into(),
            binding_message: "Close Acme renewal as won ($75,000)".into(),
            deadline: NOW + 300_000,
        },
    }));
    h.clock.advance(61_000);
    h.send(Msg::Tick);
    let s = h.screen();
    assert!(s.contains("3:59 left"), "{s}");
    assert!(s.contains("▸ list_deals ✓: 6 deals"), "{s}");
    insta::assert_snapshot!("chat_tab", h.terminal().backend());
    // The device said yes: the panel goes, the machine asks to collect the result.
    h.send(Msg::Chat(Event::CibaResolved {
        call_id: "t2".into(),
        approved: true,
        detail: "approved on your phone".into(),
    }));
    assert!(h.app.chat.ciba.is_none());
    assert!(matches!(
        h.chat_io.as_ref().unwrap().last(),
        Some(Io::Execute {
            consent: ConsentGiven::Device,
            ..
        })
    ));
    h.send(Msg::Chat(Event::ToolResult {
        call_id: "t2".into(),
        result: Ok("closed as won".into()),
    }));
    // The step-up prompt rings, and honours the input guard too.
    h.step_up("t3", "Send the email to bill@initech.example");
    assert!(
        matches!(h.notified.last(), Some(Effect::Ui(UiEffect::Notify { title, .. })) if title.contains("confirm in Chat"))
    );
    assert!(
        h.app
            .update(Msg::Key(KeyEvent::new(
                KeyCode::Char('y'),
                KeyModifiers::NONE
            )))
            .is_empty()
    );
    h.clock.advance(1000);
    let eff = h.app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('y'),
        KeyModifiers::NONE,
    )));
    assert!(
        matches!(
            &eff[..],
            [Effect::Chat(Io::Execute { call, consent: ConsentGiven::SteppedUp })] if call.id == "t3"
        ),
        "{eff:?}"
    );
}

/// A late or stale report (a gate for a call the turn no longer waits on, a device
/// answer after Esc) changes nothing: no prompt appears, nothing runs.
#[test]
fn stale_chat_reports_change_nothing() {
    let mut h = H::new();
    h.hand_chat();
    h.chat_turn(
        "email bill",
        &[(
            "t1",
            "send_email",
            serde_json::json!({"to": ["bill@initech.example"], "subject": "Hi", "body": "Hello"}),
        )],
    );
    // Esc: the turn ends, and what was (or will be) filed for t1 is withdrawn.
    h.ctrl('c');
    let io = h.chat_io.clone().unwrap();
    assert!(
        io.iter()
            .any(|i| matches!(i, Io::Decline { call_id } if call_id == "t1")),
        "{io:?}"
    );
    assert!(!h.app.chat.running);
    h.step_up("t1", "Send the email to bill@initech.example");
    assert!(
        h.app.chat.step_up.is_none(),
        "a prompt for a cancelled call"
    );
    h.send(Msg::Chat(Event::CibaResolved {
        call_id: "t1".into(),
        approved: true,
        detail: "approved".into(),
    }));
    assert!(
        !h.chat_io
            .as_ref()
            .unwrap()
            .iter()
            .any(|i| matches!(i, Io::Execute { .. })),
        "ran after the turn was cancelled"
    );
}

#[test]
fn without_a_backend_the_app_says_how_to_get_one() {
    let mut h = H::new();
    h.keys("b");
    assert!(h.screen().contains("batch: not signed in"));
    h.select("initech");
    h.keys("a");
    h.keys("X");
    assert!(h.screen().contains("execution: not signed in"));
}

/// While the signed-in services are being built (the first frame does not wait for
/// sign-in), what needs them is held by the app, said so, and released in order when
/// they settle: to run, or — sign-in failed — to be answered "not signed in". Store work
/// (the approval itself) never waits for them.
#[test]
fn what_needs_sign_in_waits_for_it_and_runs_in_order_once_it_settles() {
    use dealflow::tui::app::ServicesState;
    let mut h = H::new();
    h.app.services = ServicesState::Starting(vec![]);
    assert!(!h.app.services_settled());
    h.select("hooli");
    h.keys("a");
    h.keys("/");
    h.code(KeyCode::Esc);
    h.select("stark");
    h.keys("a");
    // Both approvals reached the store; neither execution left the app.
    assert_eq!(h.action("act-demo-stark-call").state, ActionState::Approved);
    assert!(h.executed.is_empty(), "{:?}", h.executed);
    assert!(
        h.screen()
            .contains("queued: it runs as soon as sign-in finishes"),
        "{}",
        h.screen()
    );
    let fx = h
        .app
        .update(Msg::ServicesReady(Ok(dealflow::tui::msg::Ready {
            text: "signed in: execution ready".into(),
            offline_chat: false,
        })));
    let executed: Vec<_> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Pipeline(PipelineEffect::ExecuteApproved(ids)) => Some(ids[0].as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(executed, ["act-demo-hooli-slack", "act-demo-stark-call"]);
    assert!(h.app.services_settled());
    assert!(h.screen().contains("signed in: execution ready"));
    // Sign-in failed: what waited is answered, never dropped.
    let mut h = H::new();
    h.app.services = ServicesState::Starting(vec![]);
    h.keys("b");
    assert!(!h.screen().contains("batch: not signed in"));
    h.send(Msg::ServicesReady(Err(
        "sign-in: token endpoint answered 500".into(),
    )));
    let screen = h.screen();
    assert!(screen.contains("batch: not signed in"), "{screen}");
    assert!(h.app.services_settled());
}

#[test]
fn help_and_palette_come_from_the_keymap() {
    let mut h = H::new();
    h.keys("?");
    let s = h.screen();
    assert!(
        s.contains("Approve all marked (summary, typed count)"),
        "{s}"
    );
    insta::assert_snapshot!("help_popup", h.terminal().backend());
    h.code(KeyCode::Esc);
    h.keys(":");
    h.keys("low");
    insta::assert_snapshot!("palette_popup", h.terminal().backend());
    h.code(KeyCode::Enter);
    assert!(h.screen().contains("view low-confidence"));
    assert_eq!(h.app.actions.visible.len(), 2);
}

#[test]
fn new_pending_work_notifies_once() {
    let mut h = H::new();
    assert!(h.notified.is_empty(), "no bell for what was already there");
    let mut a = h.action("act-demo-stark-call");
    a.id = "act-new".into();
    a.title = "Brand new".into();
    a.surface = Surface::Mcp;
    h.store.insert_action(&a).unwrap();
    h.send(Msg::Tick);
    assert_eq!(h.notified.len(), 1);
    assert!(
        matches!(&h.notified[0], Effect::Ui(UiEffect::Notify { title, .. }) if title.contains("1 new"))
    );
    h.send(Msg::Tick);
    assert_eq!(h.notified.len(), 1);
    // What Chat files is answered in Chat, which rings for its step-up itself: one
    // bell per question, not two.
    a.id = "act-chat".into();
    a.surface = Surface::Chat;
    h.store.insert_action(&a).unwrap();
    h.send(Msg::Tick);
    h.hand_chat();
    h.chat_turn(
        "book the call",
        &[("t1", "schedule_meeting", serde_json::json!({}))],
    );
    h.step_up("t1", "Book the call");
    assert_eq!(h.notified.len(), 2, "{:?}", h.notified);
    assert!(
        matches!(&h.notified[1], Effect::Ui(UiEffect::Notify { title, .. }) if title.contains("confirm in Chat"))
    );
}

/// A send about to leave the outbox rings once, early enough to take it back.
#[test]
fn an_outbox_send_rings_once_before_it_goes() {
    let mut h = H::with_undo_send(Some(std::time::Duration::from_secs(10)));
    h.select("initech");
    h.keys("a");
    assert!(h.notified.is_empty());
    h.clock.advance(6_000);
    h.send(Msg::Clock);
    assert!(h.notified.is_empty(), "not yet: 4 s left");
    h.clock.advance(1_500);
    h.send(Msg::Clock);
    assert_eq!(h.notified.len(), 1);
    assert!(
        matches!(&h.notified[0], Effect::Ui(UiEffect::Notify { title, body }) if title.contains("1 sending in 3 s") && body.contains("takes it back")),
        "{:?}",
        h.notified
    );
    h.clock.advance(1_000);
    h.send(Msg::Clock);
    assert_eq!(h.notified.len(), 1, "once");
    h.clock.advance(1_500);
    h.send(Msg::Clock);
    assert_eq!(h.executed, ["act-demo-initech-followup"]);
    assert_eq!(h.notified.len(), 1);
}

/// A long queue: the first frame shows the newest page of it, says more is loading,
/// and the whole queue replaces it — without calling the rest "new".
#[test]
fn the_first_frame_shows_the_newest_page_then_the_whole_queue() {
    use dealflow::tui::actions::FIRST_PAGE;
    use dealflow::tui::driver::run_headless;
    let h = H::with_setup(None, |store| {
        let base = store.get_action("act-demo-stark-call").unwrap();
        for i in 0..FIRST_PAGE + 50 {
            let mut a = base.clone();
            a.id = format!("act-long-{i:04}");
            a.created_at = NOW - 1_000_000 + i as i64;
            store.insert_action(&a).unwrap();
        }
    });
    let pending = h
        .store
        .list_actions(&dealflow::store::ActionFilter::default())
        .unwrap()
        .iter()
        .filter(|a| !a.state.is_terminal())
        .count();
    assert!(pending > FIRST_PAGE);
    // A second app over the same store, driven one effect at a time.
    let opts = TuiOptions {
        sandbox: true,
        tenant: None,
        theme: "dark".into(),
        mouse: false,
        notify: true,
        config_dir: None,
        export_dir: h._dir.path().to_path_buf(),
        wiring: None,
        max_iterations: 8,
        idle_lock: None,
        undo_send: None,
        service_status: None,
        lead_waiting: None,
    };
    let (mut app, exec) = build(h.store.clone(), &opts, Arc::new(h.clock.clone()));
    let _ = app.update(Msg::Resize(120, 36));
    let init = app.init();
    assert_eq!(init, vec![Effect::Store(StoreEffect::LoadFirstActions)]);
    let first = run_headless(&exec, init[0].clone());
    let Some(Msg::FirstActions { gated, .. }) = first.first() else {
        panic!("{first:?}")
    };
    assert_eq!(gated.len(), FIRST_PAGE);
    let fx = app.update(first[0].clone());
    assert_eq!(fx, vec![Effect::Store(StoreEffect::LoadActions)]);
    let mut t = Terminal::new(TestBackend::new(120, 36)).unwrap();
    t.draw(|f| view::render(&app, f)).unwrap();
    let screen = t.backend().to_string();
    assert!(
        screen.contains(&format!("{FIRST_PAGE}+ (loading…) shown")),
        "{screen}"
    );
    // The whole queue: every pending action, the marker gone, nothing announced as new.
    let mut notified = vec![];
    let mut q: std::collections::VecDeque<Msg> = run_headless(&exec, fx[0].clone()).into();
    while let Some(m) = q.pop_front() {
        for e in app.update(m) {
            if matches!(e, Effect::Ui(UiEffect::Notify { .. })) {
                notified.push(e.clone());
            }
            q.extend(run_headless(&exec, e));
        }
    }
    assert!(!app.actions.partial);
    assert_eq!(
        app.actions
            .rows
            .iter()
            .filter(|r| !r.action.state.is_terminal())
            .count(),
        pending
    );
    assert!(notified.is_empty(), "{notified:?}");
}

#[test]
fn the_queue_is_virtualised() {
    let mut h = H::new();
    let base = h.action("act-demo-stark-call");
    let many: Vec<Action> = (0..100_000)
        .map(|i| {
            let mut a = base.clone();
            a.id = format!("act-{i:06}");
            // A distinct target per row, so the queue's own columns say which row it is.
            if let ActionParams::ScheduleMeeting { attendees, .. } = &mut a.params {
                *attendees = vec![format!("p{i:06}@stark.example")];
            }
            a
        })
        .collect();
    let permissions = Box::new(h.store.load_permissions().unwrap());
    let mut facts = dealflow::runtime::facts::FactSource::new(h.store.as_ref()).unwrap();
    let gated = many
        .into_iter()
        .map(|a| {
            let d = facts.decide(&a, 0).unwrap();
            (a, d)
        })
        .collect();
    h.send(Msg::ActionsLoaded { gated, permissions });
    // The ids drawn, in screen order: exactly one window of consecutive rows that
    // holds the cursor, nothing from elsewhere in the 100,000 (the benchmark measures
    // that a frame costs the same at any size; this pins which rows it draws).
    let drawn = |s: &str| -> Vec<usize> {
        s.lines()
            .filter(|l| l.contains("schedule_meeting"))
            .filter_map(|l| l.split(" p").nth(1))
            .filter_map(|rest| rest.get(..6)?.parse().ok())
            .collect()
    };
    h.keys("G");
    let s = h.screen();
    assert!(s.contains("100000 shown"), "{s}");
    let last = drawn(&s);
    assert_eq!(last.last(), Some(&99_999), "{s}");
    // 100,000 rows in pages of the window's height: the last page holds the rest.
    assert!(!last.is_empty(), "{s}");
    assert!(last.windows(2).all(|w| w[1] == w[0] + 1), "{last:?}");
    h.keys("g");
    let first = drawn(&h.screen());
    assert_eq!(first.first(), Some(&0));
    assert!(first.len() > 5, "a full page: {first:?}");
    assert_eq!(
        100_000 % first.len(),
        last.len(),
        "the last page is the remainder"
    );
    assert!(first.windows(2).all(|w| w[1] == w[0] + 1), "{first:?}");
    // PageDown moves one window: the next one starts where the first ended.
    h.code(KeyCode::PageDown);
    let second = drawn(&h.screen());
    assert_eq!(
        second.first(),
        Some(&(first.last().unwrap() + 1)),
        "{second:?}"
    );
}

#[test]
fn bulk_confirmation_covers_only_the_step_ups_it_showed() {
    let mut h = H::new();
    h.keys("  "); // stark-call (review) and initech-followup (review)
    h.keys("A");
    // Permissions tighten behind the open summary: meetings now need step-up.
    set_autonomy(
        h.store.as_ref(),
        ActionKind::ScheduleMeeting,
        Autonomy::StepUp,
        "user:other",
    );
    h.clock.advance(1500);
    h.keys("2");
    h.code(KeyCode::Enter);
    assert_eq!(
        h.action("act-demo-initech-followup").state,
        ActionState::Approved
    );
    // The meeting was shown as review, so the typed count is no step-up for it.
    assert_eq!(h.action("act-demo-stark-call").state, ActionState::Proposed);
    let s = h.screen();
    assert!(
        h.audit_events()
            .iter()
            .any(|(e, _, id)| e == "action.approve_refused"
                && id.as_deref() == Some("act-demo-stark-call")),
        "{s}"
    );
    assert!(
        h.audit_events()
            .iter()
            .any(|(e, _, id)| e == "action.approve_refused"
                && id.as_deref() == Some("act-demo-stark-call"))
    );
}

#[test]
fn user_keymap_and_theme_files_merge_and_warn() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("keymap.toml"),
        "[[actions]]\nkeys = [\"y\"]\ncommand = \"approve\"\n[[actions]]\nkeys = [\"a\"]\ncommand = \"none\"\n[[global]]\nkeys = [\"Z\"]\ncommand = \"frobnicate\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("theme.toml"),
        "inherits = \"high-contrast\"\n",
    )
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
    dealflow::sandbox::demo::seed(store.as_ref(), NOW).unwrap();
    let opts = TuiOptions {
        sandbox: false,
        tenant: Some("acme.eu.auth0.com".into()),
        theme: "dark".into(),
        mouse: false,
        notify: false,
        config_dir: Some(dir.path().to_path_buf()),
        export_dir: dir.path().to_path_buf(),
        wiring: None,
        max_iterations: 8,
        idle_lock: None,
        undo_send: None,
        service_status: None,
        lead_waiting: None,
    };
    let (app, _) = build(store, &opts, Arc::new(ManualClock::new(NOW)));
    assert_eq!(app.theme.name, "high-contrast");
    let (_, status) = app.status.clone().unwrap();
    assert!(
        status.contains("unknown command \"frobnicate\""),
        "{status}"
    );
    let y = KeyEvent::new(KeyCode::Char('y'), KeyModifiers::NONE);
    let a = KeyEvent::new(KeyCode::Char('a'), KeyModifiers::NONE);
    use dealflow::tui::keymap::{Command, Section};
    assert_eq!(
        app.keymap.resolve(Section::Actions, &y),
        Some(Command::Approve)
    );
    assert_eq!(app.keymap.resolve(Section::Actions, &a), None);
    let mut t = Terminal::new(TestBackend::new(120, 36)).unwrap();
    t.draw(|f| view::render(&app, f)).unwrap();
    assert!(t.backend().to_string().contains("tenant acme.eu.auth0.com"));
}

#[test]
fn no_color_renders_without_colors_and_keeps_the_cursor_visible() {
    let mut h = H::new();
    h.app.theme = dealflow::tui::theme::Theme::load("dark", None, true).0;
    let t = h.terminal();
    let buf = t.backend().buffer();
    use ratatui::style::{Color, Modifier};
    for cell in buf.content() {
        assert!(matches!(cell.fg, Color::Reset), "{cell:?}");
        assert!(matches!(cell.bg, Color::Reset), "{cell:?}");
    }
    // Row 3 is the first queue row, where the cursor starts.
    assert!(buf[(5, 3)].modifier.contains(Modifier::REVERSED));
    assert!(!buf[(5, 4)].modifier.contains(Modifier::REVERSED));
}

/// A way to put the app into some screen state.
type Setup = Box<dyn Fn(&mut H)>;

#[test]
fn every_screen_survives_tiny_and_huge_terminals() {
    let mut h = H::new();
    let mut states: Vec<Setup> = vec![
        Box::new(|_| {}),
        Box::new(|h| h.keys("?")),
        Box::new(|h| h.keys(":")),
        Box::new(|h| {
            h.select("acme");
            h.keys("a")
        }),
        Box::new(|h| h.keys(" A")),
        Box::new(|h| h.keys("r")),
        Box::new(|h| h.keys("e")),
        Box::new(|h| h.keys("2")),
        Box::new(|h| h.keys("3")),
        Box::new(|h| {
            h.keys("3G");
            h.code(KeyCode::Enter)
        }),
        Box::new(|h| h.keys("4")),
    ];
    for (i, set) in states.iter_mut().enumerate() {
        h.code(KeyCode::Esc);
        h.code(KeyCode::Esc);
        h.keys("1");
        set(&mut h);
        for (w, ht) in [(1, 1), (10, 4), (40, 10), (80, 24), (250, 70)] {
            let mut t = Terminal::new(TestBackend::new(w, ht)).unwrap();
            t.draw(|f| view::render(&h.app, f))
                .unwrap_or_else(|e| panic!("state {i} at {w}x{ht}: {e}"));
        }
    }
    // The lock screen, with a note.
    h.app.lock.idle_ms = Some(1);
    h.clock.advance(10);
    h.send(Msg::Tick);
    h.send(Msg::Unlock(Err("denied on the device".into())));
    assert!(h.app.lock.is_locked());
    for (w, ht) in [(1, 1), (10, 4), (40, 10), (80, 24), (250, 70)] {
        let mut t = Terminal::new(TestBackend::new(w, ht)).unwrap();
        t.draw(|f| view::render(&h.app, f))
            .unwrap_or_else(|e| panic!("lock screen at {w}x{ht}: {e}"));
    }
}

#[test]
fn mouse_clicks_select_rows_and_tabs() {
    use ratatui::crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let click = |column, row| {
        Msg::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    let mut h = H::new();
    h.send(Msg::Resize(120, 36));
    h.send(click(30, 5));
    assert_eq!(h.app.actions.cursor, 2);
    assert_eq!(
        h.app.actions.current().unwrap().action.id,
        "act-demo-hooli-slack"
    );
    h.send(Msg::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 30,
        row: 5,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(h.app.actions.cursor, 3);
    // " 1 Actions  " is 12 columns wide; column 14 is in " 2 Chat ".
    h.send(click(14, 0));
    assert_eq!(h.app.tab, dealflow::tui::app::Tab::Chat);
}

#[test]
fn an_action_edited_elsewhere_behind_the_prompt_is_not_approved_unseen() {
    let mut h = H::new();
    h.select("acme");
    h.keys("a");
    // Someone else edits the payload while the step-up prompt is open.
    let other = dealflow::runtime::review::Reviewer {
        actor: "user:other".into(),
        surface: Surface::Cli,
    };
    other
        .edit(
            h.store.as_ref(),
            "act-demo-acme-close",
            &ActionParams::CloseDeal {
                revision: None,
                deal_id: "deal-acme".into(),
                won: true,
                amount_cents: 9_900_000,
            },
            NOW,
        )
        .unwrap();
    h.clock.advance(1500);
    h.keys("y");
    assert_eq!(h.action("act-demo-acme-close").state, ActionState::Proposed);
    let s = h.screen();
    assert!(
        s.contains("changed since you looked at it (v1 → v2)"),
        "{s}"
    );
}

#[test]
fn idle_lock_hides_the_session_and_only_enter_or_quit_work() {
    let mut h = H::new();
    h.app.lock.idle_ms = Some(15 * 60_000);
    // Input resets the idle timer.
    h.clock.advance(10 * 60_000);
    h.code(KeyCode::Down);
    h.clock.advance(10 * 60_000);
    h.send(Msg::Tick);
    assert!(!h.app.lock.is_locked());
    assert!(h.screen().contains("Initech"));

    h.clock.advance(6 * 60_000);
    h.send(Msg::Tick);
    assert!(h.app.lock.is_locked());
    let s = h.screen();
    assert!(s.contains("dealflow is locked"), "{s}");
    for secret in [
        "Initech",
        "bill@initech.example",
        "pending consents",
        "Payload",
    ] {
        assert!(!s.contains(secret), "{secret} shown while locked:\n{s}");
    }
    // Keys do nothing while locked: no approval, no tab switch, no paste.
    h.keys("a2/");
    h.send(Msg::Paste("hello".into()));
    assert_eq!(
        h.action("act-demo-initech-followup").state,
        ActionState::Proposed
    );
    assert!(h.app.lock.is_locked());
    // Background work still lands, unseen.
    h.send(Msg::Status {
        ok: true,
        text: "batch: 1 succeeded".into(),
    });
    assert!(!h.screen().contains("batch: 1 succeeded"));

    // No device wired here: Enter lifts the privacy screen, and the log says how.
    h.code(KeyCode::Enter);
    assert!(!h.app.lock.is_locked());
    assert!(h.screen().contains("Initech"));
    let log = h.store.audit_page(0, 1000).unwrap();
    let locked = log.iter().find(|e| e.event == "session.locked").unwrap();
    assert_eq!(locked.actor, "user:demo");
    assert_eq!(locked.detail["idle_ms"], 16 * 60_000);
    assert!(locked.detail["origin"]["unix_user"].is_string());
    let unlocked = log.iter().find(|e| e.event == "session.unlocked").unwrap();
    assert!(
        unlocked.detail["by"].as_str().unwrap().contains("keypress"),
        "{}",
        unlocked.detail
    );
    assert!(h.store.verify_audit().unwrap().is_ok());
}

#[test]
fn the_first_key_after_a_long_absence_meets_the_lock_not_the_queue() {
    let mut h = H::new();
    h.app.lock.idle_ms = Some(60_000);
    h.select("initech");
    // Away for longer than the idle time, and no tick came in between.
    h.clock.advance(61_000);
    h.keys("a");
    assert!(h.app.lock.is_locked());
    assert_eq!(
        h.action("act-demo-initech-followup").state,
        ActionState::Proposed,
        "a key pressed on an unwatched screen approved something"
    );
}

#[test]
fn a_refused_unlock_stays_locked_and_says_why() {
    let mut h = H::new();
    h.app.lock.idle_ms = Some(60_000);
    h.clock.advance(61_000);
    h.send(Msg::Tick);
    assert!(h.app.lock.is_locked());
    // As the device backend would answer.
    let effects = h
        .app
        .update(Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    assert_eq!(
        effects,
        vec![Effect::Pipeline(PipelineEffect::RequestUnlock)]
    );
    // A second Enter while the phone is asked sends nothing more.
    assert!(
        h.app
            .update(Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)))
            .is_empty()
    );
    h.send(Msg::Unlock(Err("denied on the device".into())));
    assert!(h.app.lock.is_locked());
    assert!(h.screen().contains("still locked: denied on the device"));
    assert!(
        h.store
            .audit_page(0, 1000)
            .unwrap()
            .iter()
            .any(|e| e.event == "session.unlock_refused" && e.outcome == "denied")
    );
    // Quit still works.
    h.keys("q");
    assert!(h.app.quit);
}

#[test]
fn c_on_an_account_row_connects_it_in_a_browser_from_the_tui() {
    use dealflow::core::domain::Connection;
    use dealflow::core::permissions::PermissionChange;
    use dealflow::tui::msg::ConnectEvent;
    let mut h = H::new();
    h.keys("3G"); // the last row: Slack
    h.send(Msg::Key(KeyEvent::new(
        KeyCode::Char('l'),
        KeyModifiers::NONE,
    )));
    assert!(
        h.store
            .load_permissions()
            .unwrap()
            .disconnected
            .contains(&Connection::Slack)
    );
    // No backend here: the executor says how to get one.
    h.keys("c");
    assert!(h.app.popup.is_none());
    assert!(h.screen().contains("not signed in"), "{}", h.screen());

    // With a backend (its messages played by hand).
    let fx = h.app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::NONE,
    )));
    assert_eq!(
        fx,
        vec![Effect::Pipeline(PipelineEffect::ConnectAccount(
            Connection::Slack
        ))]
    );
    assert!(h.screen().contains("asking Auth0 for a connect link"));
    h.send(Msg::Connect(ConnectEvent::Link {
        connection: Connection::Slack,
        url: "https://tenant.example/connect?ticket=t1".into(),
        plan: "adding chat:write; keeping the 1 already granted".into(),
    }));
    let s = h.screen();
    assert!(
        s.contains("https://tenant.example/connect?ticket=t1"),
        "{s}"
    );
    assert!(s.contains("adding chat:write; keeping the 1"), "{s}");
    h.send(Msg::Paste(
        "http://127.0.0.1:9/callback?connect_code=c&state=s".into(),
    ));
    let fx = h
        .app
        .update(Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    assert_eq!(
        fx,
        vec![Effect::Pipeline(PipelineEffect::ConnectRedirect(
            "http://127.0.0.1:9/callback?connect_code=c&state=s".into()
        ))]
    );
    // Connected at Auth0: dealflow's own switch follows, audited.
    let fx = h.app.update(Msg::Connect(ConnectEvent::Done {
        connection: Connection::Slack,
        result: Ok("connected sign-in-with-slack: chat:write channels:read".into()),
    }));
    assert_eq!(
        fx,
        vec![Effect::Store(StoreEffect::ChangePermissions(
            PermissionChange::SetConnected {
                connection: Connection::Slack,
                connected: true,
            }
        ))]
    );
    assert!(h.app.popup.is_none());
    h.run_effects(fx);
    assert!(h.store.load_permissions().unwrap().disconnected.is_empty());
    assert_eq!(
        h.store.audit_page(0, 1000).unwrap().pop().unwrap().event,
        "permissions.changed"
    );
    // Esc cancels a running connect.
    h.app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::NONE,
    )));
    let fx = h
        .app
        .update(Msg::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
    assert_eq!(fx, vec![Effect::Pipeline(PipelineEffect::CancelConnect)]);
    assert!(h.app.popup.is_none());
}

#[test]
fn an_approved_email_waits_in_the_outbox_and_u_takes_it_back() {
    let mut h = H::with_undo_send(Some(std::time::Duration::from_secs(10)));
    h.select("initech");
    h.keys("a");
    let id = "act-demo-initech-followup";
    assert_eq!(h.action(id).state, ActionState::Approved);
    assert!(h.executed.is_empty(), "an email waits out the window first");
    let s = h.screen();
    assert!(s.contains("sends in 10s · u takes it back"), "{s}");
    assert!(s.contains("sending 10s"), "{s}");
    assert!(s.contains("outbox 1 · u undo"), "{s}");
    // The countdown moves with the clock; nothing runs before the window ends.
    h.clock.advance(6_500);
    h.send(Msg::Clock);
    assert!(h.screen().contains("sending 4s"), "{}", h.screen());
    assert!(h.executed.is_empty());
    // Another tab, cursor on another row: u still takes back the latest send.
    h.keys("2");
    h.keys("1");
    h.keys("/");
    h.code(KeyCode::Esc);
    h.select("hooli");
    assert_eq!(
        h.app.actions.current().unwrap().action.id,
        "act-demo-hooli-slack"
    );
    h.keys("u");
    let a = h.action(id);
    assert_eq!(a.state, ActionState::Proposed, "back in the queue");
    assert_eq!(
        a.evidence, None,
        "its consent is gone: running it needs a new approval"
    );
    assert!(h.audit_events().contains(&(
        "action.withdrawn".into(),
        "user:demo".into(),
        Some(id.into())
    )));
    // The window passing later runs nothing.
    h.clock.advance(60_000);
    h.send(Msg::Tick);
    assert!(h.executed.is_empty(), "{:?}", h.executed);
    assert!(!h.screen().contains("outbox"), "{}", h.screen());
    // Nothing waiting: u says so rather than doing something else.
    h.keys("u");
    assert!(h.screen().contains("nothing waiting in the outbox"));
}

#[test]
fn the_outbox_sends_when_the_window_ends_and_reversible_writes_never_wait() {
    let mut h = H::with_undo_send(Some(std::time::Duration::from_secs(5)));
    h.select("hooli");
    h.keys("a");
    assert!(h.executed.is_empty());
    h.clock.advance(4_999);
    h.send(Msg::Clock);
    assert!(h.executed.is_empty());
    h.clock.advance(1);
    h.send(Msg::Clock);
    assert_eq!(h.executed, ["act-demo-hooli-slack"]);
    // Once: later ticks do not send it again.
    h.clock.advance(10_000);
    h.send(Msg::Tick);
    assert_eq!(h.executed.len(), 1);
    // A calendar invite can be moved or cancelled afterwards: it runs at once.
    h.keys("/");
    h.code(KeyCode::Esc);
    h.select("stark");
    let stark = h.action("act-demo-stark-call");
    assert_eq!(stark.kind(), ActionKind::ScheduleMeeting);
    h.keys("a");
    assert_eq!(h.executed, ["act-demo-hooli-slack", "act-demo-stark-call"]);
}

#[test]
fn editing_a_waiting_send_takes_it_out_and_x_sends_now() {
    let mut h = H::with_undo_send(Some(std::time::Duration::from_secs(30)));
    h.select("initech");
    h.keys("a");
    // An edit voids the approval: the old approval must not send the new text.
    let a = h.action("act-demo-initech-followup");
    let mut params = a.params.clone();
    if let ActionParams::SendEmail(e) = &mut params {
        e.body.push_str("\nP.S.");
    }
    h.run_effects(vec![Effect::Store(StoreEffect::Edit {
        id: a.id.clone(),
        version: a.version,
        params,
    })]);
    assert_eq!(h.action(&a.id).state, ActionState::Proposed);
    h.clock.advance(60_000);
    h.send(Msg::Clock);
    assert!(h.executed.is_empty(), "{:?}", h.executed);
    assert!(h.app.outbox.is_empty());
    // Approved again, X sends at once and empties the outbox.
    h.keys("a");
    assert_eq!(h.app.outbox.len(), 1);
    h.keys("X");
    assert_eq!(h.executed, std::slice::from_ref(&a.id));
    assert!(h.app.outbox.is_empty());
    h.clock.advance(60_000);
    h.send(Msg::Clock);
    assert_eq!(h.executed.len(), 1, "not twice");
}

#[test]
fn approvals_left_unrun_are_named_on_the_first_load() {
    let h = H::with_setup(Some(std::time::Duration::from_secs(10)), |store| {
        reviewer()
            .approve(store, "act-demo-hooli-slack", false, NOW)
            .unwrap();
    });
    let app = &h.app;
    let (_, text) = app.status.clone().unwrap();
    assert!(text.contains("1 approved but not run"), "{text}");
    assert!(text.contains("X runs them"), "{text}");
    // Left alone: nothing runs by itself after a restart.
    assert!(app.outbox.is_empty());
}

#[test]
fn a_counterparty_is_pinned_and_unpinned_from_the_permissions_tab() {
    let mut h = H::new();
    h.keys("3");
    // The pins row sits under the autonomy rows: 7 writes + 6 reads, then pins.
    for _ in 0..13 {
        h.keys("j");
    }
    assert!(h.screen().contains("always review (pinned)"));
    h.code(KeyCode::Enter);
    assert!(h.screen().contains("-name unpins"), "{}", h.screen());
    h.keys("#Deals");
    h.code(KeyCode::Enter);
    let p = h.store.load_permissions().unwrap();
    assert!(p.always_review.contains("#deals"), "{:?}", p.always_review);
    let last = h.store.audit_page(0, 1000).unwrap().pop().unwrap();
    assert_eq!(last.detail["summary"], "always review anything to #deals");
    // The Slack post to #deals says why it is reviewed.
    h.keys("1");
    h.select("hooli");
    assert!(
        h.screen().contains("#deals is pinned: always reviewed"),
        "{}",
        h.screen()
    );
    // Typing a pinned one again (to be sure) keeps it and says how to unpin.
    h.keys("3");
    h.code(KeyCode::Enter);
    h.keys("#deals");
    h.code(KeyCode::Enter);
    assert!(
        h.screen()
            .contains("#deals is already pinned (-#deals unpins it)")
    );
    assert!(
        h.store
            .load_permissions()
            .unwrap()
            .always_review
            .contains("#deals")
    );
    h.code(KeyCode::Esc);
    h.code(KeyCode::Enter);
    h.keys("-#deals");
    h.code(KeyCode::Enter);
    assert!(h.store.load_permissions().unwrap().always_review.is_empty());

    // An account pin shows in the queue for an email filed under one of its deals, as
    // approval will apply it: send_email set to auto, yet the Initech follow-up is reviewed.
    h.keys("g");
    h.keys("h");
    assert_eq!(
        h.store
            .load_permissions()
            .unwrap()
            .autonomy_for(ActionKind::SendEmail),
        Autonomy::Auto
    );
    for _ in 0..13 {
        h.keys("j");
    }
    h.code(KeyCode::Enter);
    h.keys("Initech");
    h.code(KeyCode::Enter);
    h.keys("1");
    h.keys("/");
    h.code(KeyCode::Esc);
    h.select("initech");
    h.send(Msg::Tick);
    let row = h.app.actions.current().unwrap();
    assert_eq!(row.decision.gate().name(), "review", "{:?}", row.decision);
    assert!(
        h.screen().contains("initech is pinned: always reviewed"),
        "{}",
        h.screen()
    );
}

#[test]
fn a_budget_is_set_and_removed_from_the_permissions_tab() {
    let mut h = H::new();
    h.keys("3");
    // Under the pins row: 7 writes + 6 reads, pins, then budgets.
    for _ in 0..14 {
        h.keys("j");
    }
    assert!(
        h.screen().contains("budgets (without review)"),
        "{}",
        h.screen()
    );
    assert!(h.screen().contains("send_email 50/day"), "{}", h.screen());
    h.code(KeyCode::Enter);
    assert!(h.screen().contains("-send_email removes"), "{}", h.screen());
    h.keys("send_email 20/day");
    h.code(KeyCode::Enter);
    let p = h.store.load_permissions().unwrap();
    let email = |p: &dealflow::core::permissions::Permissions| {
        p.budgets
            .iter()
            .filter(|b| b.kind == ActionKind::SendEmail)
            .map(|b| b.spec())
            .collect::<Vec<_>>()
    };
    assert_eq!(email(&p), ["20/day"]);
    let last = h.store.audit_page(0, 1000).unwrap().pop().unwrap();
    assert_eq!(
        last.detail["summary"],
        "budget send_email: 20 per day (was 50 per day)"
    );
    h.code(KeyCode::Enter);
    h.keys("send_email lots");
    h.code(KeyCode::Enter);
    assert!(
        h.screen().contains("N/hour, N/day or N/week"),
        "{}",
        h.screen()
    );
    h.code(KeyCode::Esc);
    h.code(KeyCode::Enter);
    h.keys("-send_email");
    h.code(KeyCode::Enter);
    assert!(email(&h.store.load_permissions().unwrap()).is_empty());
}

/// Five unedited approvals at high confidence: the Trust popup offers a rule, accepting
/// it (past the input guard) is an audited permission change carrying its evidence, the
/// queue then shows the rule applying, and `x` revokes it in one key.
#[test]
fn calibration_nudges_are_accepted_and_revoked_from_the_trust_popup() {
    let mut h = H::new();
    approve_streak(&h, "act-past", "bill@initech.example", 5);
    let mut next = h.action("act-demo-initech-followup");
    next.id = "act-next".into();
    next.confidence = 0.95;
    h.store.insert_action(&next).unwrap();
    assert!(h.app.trust.nudges().is_empty());
    h.send(Msg::Tick);
    assert_eq!(h.app.trust.nudges().len(), 1);
    let s = h.screen();
    assert!(
        s.contains("calibration suggests: auto-approve send email to @initech.example"),
        "{s}"
    );
    assert!(s.contains("1 nudge · n"), "{s}");
    // A nudge that appears while the app runs rings, once.
    let rings = |h: &H| {
        h.notified
            .iter()
            .filter(|e| matches!(e, Effect::Ui(UiEffect::Notify { title, .. }) if title.contains("calibration suggests")))
            .count()
    };
    assert_eq!(rings(&h), 1, "{:?}", h.notified);
    h.send(Msg::Tick);
    assert_eq!(rings(&h), 1);
    // Beside the next one's confidence: what the person did with similar ones.
    h.select("act-next");
    assert!(
        h.screen()
            .contains("track record: send_email at ≥ 0.90: you 5/5 approved unedited"),
        "{}",
        h.screen()
    );
    assert_eq!(
        h.app.actions.current().unwrap().decision.gate().name(),
        "review"
    );

    h.keys("n");
    let s = h.screen();
    assert!(s.contains("Trust · calibration only suggests"), "{s}");
    assert!(s.contains("(5 approved unedited in a row)"), "{s}");
    // Enter right away is a stray key: refused by the input guard.
    h.code(KeyCode::Enter);
    assert!(h.store.load_permissions().unwrap().auto_rules.is_empty());
    h.clock.advance(1_100);
    h.code(KeyCode::Enter);
    let p = h.store.load_permissions().unwrap();
    assert_eq!(p.auto_rules.len(), 1, "{:?}", p.auto_rules);
    let rule = p.auto_rules[0].clone();
    assert_eq!(rule.target, "@initech.example");
    assert_eq!(rule.expires_at - rule.created_at, 30 * 24 * 3600 * 1000);
    let last = h.store.audit_page(0, 1000).unwrap().pop().unwrap();
    assert_eq!(last.event, "permissions.changed");
    assert_eq!(last.detail["evidence"].as_array().unwrap().len(), 5);
    // The queue shows the rule at work; the nudge is gone.
    h.send(Msg::Tick);
    assert_eq!(
        h.app.actions.current().unwrap().decision.gate().name(),
        "allow"
    );
    assert!(h.app.trust.nudges().is_empty());
    // The ledger lists it; x revokes it.
    h.keys("n");
    assert!(
        h.screen()
            .contains("send_email to @initech.example at ≥ 0.90 · 0 hits"),
        "{}",
        h.screen()
    );
    h.keys("x");
    assert!(h.store.load_permissions().unwrap().auto_rules.is_empty());
    h.code(KeyCode::Esc);
    h.send(Msg::Tick);
    // Revoked, the streak still stands: the nudge is back, and d puts it away for now.
    assert_eq!(h.app.trust.nudges().len(), 1);
    h.keys("n");
    h.keys("d");
    assert!(h.app.trust.nudges().is_empty());
    assert!(h.store.load_permissions().unwrap().auto_rules.is_empty());
}

/// A "no" beats an earlier "always": rejecting in the queue a suggestion that a rule
/// covers pauses the rule — the status line says so, the next suggestion it covers is
/// reviewed, the Trust popup shows it paused with the action and when — and `r` there
/// (past the input guard) resumes it.
#[test]
fn a_rejection_pauses_the_rule_and_the_trust_popup_resumes_it() {
    let mut h = H::with_setup(None, |store| {
        store
            .change_permissions(
                &PermissionChange::AddAutoRule {
                    rule: dealflow::core::permissions::AutoApproveRule {
                        id: "rule-initech".into(),
                        kind: ActionKind::SendEmail,
                        target: "@initech.example".into(),
                        min_confidence: 0.9,
                        created_at: NOW - 1_000,
                        expires_at: NOW + 86_400_000,
                        paused: None,
                    },
                },
                dealflow::core::audit::NewAuditEntry {
                    ts: NOW - 1_000,
                    actor: "user:demo".into(),
                    surface: Some(Surface::Cli),
                    event: "permissions.changed".into(),
                    action_id: None,
                    outcome: "ok".into(),
                    detail: serde_json::json!({}),
                },
            )
            .unwrap();
    });
    let template = h.action("act-demo-initech-followup");
    for id in ["act-first", "act-second"] {
        let mut a = template.clone();
        a.id = id.into();
        a.confidence = 0.95;
        h.store.insert_action(&a).unwrap();
    }
    h.send(Msg::Tick);
    // The filter is cleared first: `/` types on after what it last held.
    let pick = |h: &mut H, id: &str| {
        h.keys("/");
        h.code(KeyCode::Esc);
        h.select(id);
    };
    let gate = |h: &mut H, id: &str| {
        pick(h, id);
        h.app.actions.current().unwrap().decision.clone()
    };
    assert_eq!(gate(&mut h, "act-second").auto_rule(), Some("rule-initech"));

    pick(&mut h, "act-first");
    h.keys("r");
    h.keys("not now");
    h.code(KeyCode::Enter);
    assert_eq!(h.action("act-first").state, ActionState::Rejected);
    let rule = |h: &H| h.store.load_permissions().unwrap().auto_rules[0].clone();
    assert_eq!(rule(&h).paused.unwrap().action_id, "act-first");
    let (_, status) = h.app.status.clone().unwrap();
    assert!(
        status.contains(
            "auto-approve rule send_email to @initech.example paused: you rejected act-first"
        ),
        "{status}"
    );
    h.send(Msg::Tick);
    let d = gate(&mut h, "act-second");
    assert_eq!(d.gate().name(), "review", "{}", d.explain());
    assert!(
        d.explain().contains("rule-initech is paused"),
        "{}",
        d.explain()
    );

    h.keys("n");
    let s = h.screen();
    assert!(
        s.contains("PAUSED: you rejected act-first (bill@initech.example)"),
        "{s}"
    );
    assert!(s.contains("r resume · x revoke"), "{s}");
    // The rule row is after any nudges: put the cursor on it.
    for _ in 0..5 {
        h.keys("j");
    }
    // Right away, `r` is a stray key.
    h.keys("r");
    assert!(rule(&h).paused.is_some());
    h.clock.advance(1_100);
    h.keys("r");
    assert!(rule(&h).paused.is_none());
    let last = h.store.audit_page(0, 10_000).unwrap().pop().unwrap();
    assert!(
        last.detail["summary"]
            .as_str()
            .unwrap()
            .starts_with("auto-approve rule rule-initech resumed"),
        "{:?}",
        last.detail
    );
    h.code(KeyCode::Esc);
    h.send(Msg::Tick);
    assert_eq!(gate(&mut h, "act-second").auto_rule(), Some("rule-initech"));
}

#[test]
fn rejecting_a_waiting_send_stops_the_countdown_and_esc_puts_it_back() {
    let mut h = H::with_undo_send(Some(std::time::Duration::from_secs(5)));
    h.select("initech");
    h.keys("a");
    assert_eq!(h.app.outbox.len(), 1);
    // The reject prompt is open past the window: nothing is sent meanwhile.
    h.keys("r");
    h.clock.advance(10_000);
    h.send(Msg::Clock);
    assert!(h.executed.is_empty(), "{:?}", h.executed);
    // Esc: back in the outbox with a fresh window, not sent the moment the prompt closes.
    h.code(KeyCode::Esc);
    assert_eq!(h.app.outbox.len(), 1);
    h.send(Msg::Clock);
    assert!(h.executed.is_empty());
    // Quitting with a send waiting asks first; the second press quits.
    h.keys("q");
    assert!(!h.app.quit);
    assert!(h.screen().contains("still in the outbox"), "{}", h.screen());
    h.keys("r");
    h.keys("changed my mind");
    h.code(KeyCode::Enter);
    assert_eq!(
        h.action("act-demo-initech-followup").state,
        ActionState::Rejected
    );
    h.clock.advance(10_000);
    h.send(Msg::Clock);
    assert!(h.executed.is_empty());
    h.keys("q");
    assert!(h.app.quit, "nothing waits: one press quits");
}

/// A fresh calibration that reorders the Trust list under an open popup: the cursor
/// follows the nudge it was on and the input guard starts again, so Enter can never
/// accept a nudge the person did not have in front of them.
#[test]
fn the_trust_cursor_follows_its_nudge_when_the_list_changes() {
    let mut h = H::new();
    approve_streak(&h, "ini", "bill@initech.example", 5);
    h.send(Msg::Tick);
    h.keys("n");
    h.clock.advance(1_500);
    // A streak for @acme.example sorts before the one on screen.
    approve_streak(&h, "acme", "ann@acme.example", 5);
    h.send(Msg::Tick);
    assert_eq!(h.app.trust.nudges().len(), 2);
    let s = h.screen();
    assert!(
        s.contains("▸ auto-approve send email to @initech.example"),
        "{s}"
    );
    h.code(KeyCode::Enter);
    assert!(
        h.store.load_permissions().unwrap().auto_rules.is_empty(),
        "the guard started again when the list moved"
    );
    h.clock.advance(1_100);
    h.code(KeyCode::Enter);
    let rules = h.store.load_permissions().unwrap().auto_rules;
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].target, "@initech.example",
        "the one that was shown"
    );
}

/// The rubber-stamp guard: after five approvals inside half a minute, the next
/// irreversible one opens the full confirmation (behind the input guard) instead of
/// going straight through; after that one look the count starts over.
#[test]
fn approving_faster_than_anyone_reads_stops_at_the_next_irreversible_one() {
    let mut h = H::new();
    let template = h.action("act-demo-initech-followup");
    for i in 0..7 {
        let mut a = template.clone();
        a.id = format!("act-fast-{i}");
        h.store.insert_action(&a).unwrap();
    }
    h.send(Msg::Tick);
    for i in 0..5 {
        h.keys("/");
        h.code(KeyCode::Esc);
        h.select(&format!("act-fast-{i}"));
        h.keys("a");
        assert_eq!(
            h.action(&format!("act-fast-{i}")).state,
            ActionState::Approved
        );
        h.clock.advance(2_000);
    }
    h.keys("/");
    h.code(KeyCode::Esc);
    h.select("act-fast-5");
    h.keys("a");
    let s = h.screen();
    assert!(s.contains("pace check: 5 approvals in 30 s"), "{s}");
    assert_eq!(h.action("act-fast-5").state, ActionState::Proposed);
    h.keys("y");
    assert_eq!(
        h.action("act-fast-5").state,
        ActionState::Proposed,
        "input guard"
    );
    h.clock.advance(1_100);
    h.keys("y");
    assert_eq!(h.action("act-fast-5").state, ActionState::Approved);
    // One look resets the pace: the next goes straight through.
    h.keys("/");
    h.code(KeyCode::Esc);
    h.select("act-fast-6");
    h.keys("a");
    assert_eq!(h.action("act-fast-6").state, ActionState::Approved);
}

/// Calibration made visible: after five unedited approvals of send_email at ≥ 0.90, `C`
/// charts what the person did per band against the ideal, names the counts behind each
/// point, lists the rules for the kind, and j moves to the next kind.
#[test]
fn the_calibration_popup_charts_approvals_per_band() {
    let mut h = H::new();
    approve_streak(&h, "act-past", "bill@initech.example", 5);
    h.send(Msg::Tick);
    h.keys("C");
    let s = h.screen();
    assert!(s.contains("Calibration · send_email"), "{s}");
    assert!(s.contains("≥ 0.90: 5/5 unedited (100%)"), "{s}");
    assert!(s.contains("0.60–0.75: no decisions yet"), "{s}");
    assert!(s.contains("agent's confidence"), "{s}");
    h.keys("j");
    assert!(
        h.screen().contains("Calibration · draft_email"),
        "{}",
        h.screen()
    );
    h.code(KeyCode::Esc);
    assert!(!h.screen().contains("Calibration ·"));
}

fn screen_at(h: &H, w: u16, ht: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, ht)).unwrap();
    t.draw(|f| view::render(&h.app, f)).unwrap();
    t.backend().to_string()
}

/// 80×24, the SSH default: every Permissions row is reachable (the list follows the
/// cursor), and the Actions table keeps its state column while a send waits, with the
/// outbox hint first on the status bar.
#[test]
fn at_80_by_24_every_row_and_the_state_stay_in_view() {
    let mut h = H::with_undo_send(Some(std::time::Duration::from_secs(10)));
    h.keys("3");
    let top = screen_at(&h, 80, 24);
    assert!(top.contains("autonomy · send_email"), "{top}");
    // Without a help column the value takes the room: no label and no value is cut.
    let mut seen = top.clone();
    for _ in 0..40 {
        h.keys("j");
        seen.push_str(&screen_at(&h, 80, 24));
    }
    assert!(seen.contains("autonomy · list_slack_channels"), "{seen}");
    // A value too long for the column (the budgets) is shown whole below when selected.
    let at = dealflow::tui::permissions::rows()
        .iter()
        .position(|r| matches!(r, dealflow::tui::permissions::PermRow::Budgets))
        .unwrap();
    h.keys("3");
    while h.app.perms.cursor > at {
        h.keys("k");
    }
    while h.app.perms.cursor < at {
        h.keys("j");
    }
    let budgets = screen_at(&h, 80, 24);
    let kinds: Vec<String> = h
        .app
        .perms
        .perms
        .as_ref()
        .unwrap()
        .budgets
        .iter()
        .map(|b| format!("{} {}", b.kind, b.spec()))
        .collect();
    assert!(kinds.len() > 2, "the default has budgets for several kinds");
    let flat = budgets.split_whitespace().collect::<Vec<_>>().join(" ");
    for k in &kinds {
        assert!(flat.contains(k.as_str()), "{k} not on screen:\n{budgets}");
    }
    for _ in 0..40 {
        h.keys("j");
    }
    let bottom = screen_at(&h, 80, 24);
    assert!(bottom.contains("account · sign-in-with-slack"), "{bottom}");
    assert!(bottom.contains("MCP write tools exposed"), "{bottom}");
    h.keys("1");
    h.select("initech");
    h.keys("a");
    let s = screen_at(&h, 80, 24);
    assert!(s.contains("sending"), "{s}");
    let bar = s.lines().last().unwrap();
    assert!(bar.contains("outbox 1"), "{bar}");
}

/// After a long exchange whose replies wrap, the newest reply is on screen at 80×24;
/// k scrolls back through it and G returns to the newest.
#[test]
fn the_newest_chat_reply_stays_in_view_when_lines_wrap() {
    let mut h = H::new();
    h.hand_chat();
    h.chat_turn("tell me everything", &[]);
    for i in 0..12 {
        h.send(Msg::Chat(Event::TextDelta(format!(
            "reply {i}: {}\n",
            "a long sentence that wraps on a narrow terminal ".repeat(3)
        ))));
    }
    h.send(Msg::Chat(Event::TextDelta("THE NEWEST LINE".into())));
    let s = screen_at(&h, 80, 24);
    assert!(s.contains("THE NEWEST LINE"), "{s}");
    for _ in 0..30 {
        h.keys("k");
    }
    assert!(!screen_at(&h, 80, 24).contains("THE NEWEST LINE"));
    h.keys("G");
    assert!(screen_at(&h, 80, 24).contains("THE NEWEST LINE"));
}

/// In help at 80×24, G goes to the last key instead of closing the list, and g back.
#[test]
fn help_scrolls_to_its_end_with_g() {
    let mut h = H::new();
    h.send(Msg::Resize(80, 24));
    h.keys("?");
    h.keys("G");
    assert!(matches!(h.app.popup, Some(Popup::Help { .. })));
    let s = screen_at(&h, 80, 24);
    assert!(s.contains("Export the log as JSONL"), "{s}");
    h.keys("g");
    assert!(screen_at(&h, 80, 24).contains("[global]"));
}

fn long_body() -> String {
    let mut lines = vec!["Hi Bill,".to_string(), String::new()];
    lines.push("Pricing: $1 per seat for the first year.".into());
    lines.extend((1..=30).map(|i| format!("Detail line {i} of the seat plan.")));
    lines.push("Last line: reply by Friday.".into());
    lines.join("\n")
}

/// "Confirm exactly this" shows all of it at 80×24: every row of a long body can be
/// scrolled into view, and `y` waits until the last row has been on screen.
#[test]
fn chat_step_up_shows_the_whole_payload_and_y_waits_for_its_end() {
    let mut h = H::new();
    h.send(Msg::Resize(80, 24));
    h.hand_chat();
    h.chat_turn(
        "mail bill the seat plan, then tell #deals",
        &[
            ("act-long", "send_email", serde_json::json!({})),
            ("act-two", "post_slack", serde_json::json!({})),
        ],
    );
    let summary = format!(
        "Send an email to bill@initech.example, subject \"Seats\":\n{}",
        long_body()
    );
    h.step_up("act-long", &summary);
    let s = screen_at(&h, 80, 24);
    assert!(
        s.contains("$1 per seat"),
        "the third line is in the box:\n{s}"
    );
    assert!(s.contains("rows 1-"), "{s}");
    h.clock.advance(1100);
    // Not all shown yet: y is held, n would not be.
    assert!(
        h.app
            .update(Msg::Key(KeyEvent::new(
                KeyCode::Char('y'),
                KeyModifiers::NONE
            )))
            .is_empty()
    );
    assert!(screen_at(&h, 80, 24).contains("read it all first"));
    h.code(KeyCode::Char('G'));
    let s = screen_at(&h, 80, 24);
    assert!(s.contains("Last line: reply by Friday."), "{s}");
    let fx = h.app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('y'),
        KeyModifiers::NONE,
    )));
    assert!(
        matches!(
            &fx[..],
            [Effect::Chat(Io::Execute { call, consent: ConsentGiven::SteppedUp })] if call.id == "act-long"
        ),
        "{fx:?}"
    );
    h.send(Msg::Chat(Event::ToolResult {
        call_id: "act-long".into(),
        result: Ok("sent".into()),
    }));
    // A refusal stays in the transcript too, and withdraws what was filed for it.
    h.step_up("act-two", "Post to #deals: hello");
    h.clock.advance(1100);
    h.code(KeyCode::Char('n'));
    let s = screen_at(&h, 80, 24);
    assert!(s.contains("confirmed (act-long)"), "{s}");
    assert!(s.contains("declined (act-two): Post to #deals"), "{s}");
    assert!(
        h.chat_io
            .as_ref()
            .unwrap()
            .iter()
            .any(|i| matches!(i, Io::Decline { call_id } if call_id == "act-two"))
    );
}

/// The seeded app plus `act-long-mail`, an email with a 35-line body, and send_email
/// at step-up.
fn with_long_mail() -> H {
    H::with_setup(None, |store| {
        let mut a = store.get_action("act-demo-initech-followup").unwrap();
        if let ActionParams::SendEmail(e) = &mut a.params {
            e.body = long_body();
        }
        a.original = a.params.clone();
        store
            .insert_action(&Action {
                id: "act-long-mail".into(),
                ..a
            })
            .unwrap();
        set_autonomy(
            store,
            ActionKind::SendEmail,
            Autonomy::StepUp,
            "user:tester",
        );
    })
}

/// The Actions tab's step-up shows the email body it approves, scrollable at 80×24.
#[test]
fn actions_step_up_shows_the_body_and_y_waits_for_its_end() {
    let mut h = with_long_mail();
    h.send(Msg::Resize(80, 24));
    h.select("act-long-mail");
    h.keys("a");
    let s = screen_at(&h, 80, 24);
    assert!(s.contains("Step-up confirmation · rows 1-"), "{s}");
    assert!(s.contains("$1 per seat"), "{s}");
    h.clock.advance(1100);
    h.keys("y");
    assert_eq!(h.action("act-long-mail").state, ActionState::Proposed);
    // (The popup covers the status line; its own key line says why.)
    let s = screen_at(&h, 80, 24);
    assert!(s.contains("20 more row(s)"), "{s}");
    h.keys("G");
    assert!(screen_at(&h, 80, 24).contains("Last line: reply by Friday."));
    h.keys("y");
    assert_eq!(h.action("act-long-mail").state, ActionState::Approved);
}

/// The bulk summary lists every step-up's whole payload; the typed count confirms them
/// only once all of it has been on screen.
#[test]
fn bulk_summary_shows_every_step_up_payload_before_the_count_confirms_it() {
    let mut h = with_long_mail();
    h.send(Msg::Resize(80, 24));
    h.select("act-long-mail");
    h.keys(" ");
    h.keys("A");
    let s = screen_at(&h, 80, 24);
    assert!(s.contains("Approve marked · rows 1-"), "{s}");
    assert!(s.contains("$1 per seat"), "{s}");
    h.clock.advance(1100);
    h.keys("1");
    h.code(KeyCode::Enter);
    assert_eq!(h.action("act-long-mail").state, ActionState::Proposed);
    assert!(h.app.popup.is_some());
    h.keys("G");
    assert!(screen_at(&h, 80, 24).contains("Last line: reply by Friday."));
    h.code(KeyCode::Enter);
    assert_eq!(h.action("act-long-mail").state, ActionState::Approved);
}

/// On a terminal too small to show a payload row, or of unknown size, nothing can be
/// confirmed; keys typed on through the first second do not scroll either.
#[test]
fn a_step_up_is_never_confirmed_unseen() {
    let mut h = H::new();
    h.hand_chat();
    h.chat_turn(
        "mail bill",
        &[("act-tiny", "send_email", serde_json::json!({}))],
    );
    h.send(Msg::Resize(80, 9));
    h.step_up(
        "act-tiny",
        "Send an email to bill@initech.example:\nline two",
    );
    // Typed on through the guard: G does not scroll.
    h.code(KeyCode::Char('G'));
    assert_eq!(h.app.chat.step_up.as_ref().unwrap().scroll, 0);
    h.clock.advance(1100);
    h.code(KeyCode::Char('G'));
    let fx = h.app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('y'),
        KeyModifiers::NONE,
    )));
    assert!(fx.is_empty(), "confirmed on a 9-row terminal: {fx:?}");
    assert!(h.app.chat.step_up.is_some());
    // Room enough again: the same prompt confirms once read.
    h.send(Msg::Resize(80, 24));
    let fx = h.app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('y'),
        KeyModifiers::NONE,
    )));
    assert!(
        matches!(
            &fx[..],
            [Effect::Chat(Io::Execute { call, consent: ConsentGiven::SteppedUp })] if call.id == "act-tiny"
        ),
        "{fx:?}"
    );
    // The popup too: at 3 rows nothing is shown, so y does nothing.
    h.keys("1");
    h.send(Msg::Resize(80, 3));
    h.select("acme");
    h.keys("a");
    h.clock.advance(1100);
    h.keys("y");
    assert_eq!(h.action("act-demo-acme-close").state, ActionState::Proposed);
}

/// 80×24: the detail pane is too short for the justification, the gate's reasons and
/// the payload; J/K scroll it (both panes, each as far as it has lines), the title says
/// how much is left, and another selection starts at the top.
#[test]
fn the_detail_pane_scrolls_at_80x24_to_the_reasons_and_the_whole_payload() {
    let mut h = H::new();
    h.select("stark");
    let top = screen_at(&h, 80, 24);
    assert!(top.contains("more ↓"), "{top}");
    assert!(!top.contains("1. autonomy"), "{top}");
    for _ in 0..10 {
        h.keys("J");
        screen_at(&h, 80, 24);
    }
    let end = screen_at(&h, 80, 24);
    assert!(end.contains("scroll · end"), "{end}");
    assert!(end.contains("1. autonomy for schedule_meeting"), "{end}");
    assert!(end.contains("pepper@stark.example"), "{end}");
    // Scrolling past the end does not pile up: one K moves back at once.
    h.keys("K");
    assert!(screen_at(&h, 80, 24).contains("3 more ↓"));
    // Another selection starts at the top.
    h.keys("/");
    h.code(KeyCode::Esc);
    h.select("initech");
    let other = screen_at(&h, 80, 24);
    assert!(other.contains("Follow up"), "{other}");
    assert!(!other.contains("scroll · end"), "{other}");
}

/// The form refuses to move a meeting into the past, naming the time it read; the
/// action stays as it was.
#[test]
fn a_meeting_moved_into_the_past_is_refused_in_the_form() {
    let mut h = H::new();
    h.select("stark");
    h.keys("e");
    h.code(KeyCode::Down);
    h.code(KeyCode::Down);
    h.code(KeyCode::Home);
    h.ctrl('k');
    h.keys("When: 2001-01-01 09:00 UTC");
    h.ctrl('s');
    let s = h.screen();
    assert!(s.contains("2001-01-01 09:00 UTC has passed"), "{s}");
    assert!(!h.action("act-demo-stark-call").is_edited());
}

/// Approving what needs a disconnected account does not approve it only for it to fail
/// after the outbox countdown: it asks to connect first, and esc leaves it pending.
#[test]
fn approving_what_needs_a_disconnected_account_offers_to_connect_it() {
    let mut h = H::new();
    change_permissions(
        h.store.as_ref(),
        dealflow::core::permissions::PermissionChange::SetConnected {
            connection: dealflow::core::domain::Connection::Google,
            connected: false,
        },
        "user:demo",
    );
    h.run_effects(vec![Effect::Store(StoreEffect::LoadActions)]);
    h.select("initech");
    h.keys("a");
    let s = screen_at(&h, 80, 24);
    assert!(s.contains("Account needed"), "{s}");
    assert!(s.contains("needs google-oauth2"), "{s}");
    h.code(KeyCode::Esc);
    assert_eq!(
        h.action("act-demo-initech-followup").state,
        ActionState::Proposed
    );
    assert!(h.executed.is_empty());
    // c goes straight to the connect flow for that account (here, with no sign-in
    // behind the harness, the flow itself says why it cannot run).
    h.keys("a");
    h.keys("c");
    let s = h.screen();
    assert!(s.contains("connect google-oauth2: not signed in"), "{s}");
    // A Slack post is not held up by Google.
    h.code(KeyCode::Esc);
    h.keys("/");
    h.code(KeyCode::Esc);
    h.select("#deals");
    h.keys("a");
    assert!(!screen_at(&h, 80, 24).contains("Account needed"));
    // A close of a deal read from Salesforce (it carries the record's revision) needs
    // the salesforce account, off here.
    h.code(KeyCode::Esc);
    change_permissions(
        h.store.as_ref(),
        dealflow::core::permissions::PermissionChange::SetConnected {
            connection: dealflow::core::domain::Connection::Salesforce,
            connected: false,
        },
        "user:demo",
    );
    let mut sf = h.action("act-demo-acme-close");
    sf.id = "act-sf-close".into();
    sf.title = "Close Umbrella in Salesforce".into();
    sf.params = dealflow::core::domain::ActionParams::CloseDeal {
        deal_id: "006SBEA56D120D9298".into(),
        won: true,
        amount_cents: 12_000_000,
        revision: Some("2026-11-27T06:00:00.000+0000".into()),
    };
    sf.original = sf.params.clone();
    h.store.insert_action(&sf).unwrap();
    h.run_effects(vec![Effect::Store(StoreEffect::LoadActions)]);
    h.keys("/");
    h.code(KeyCode::Esc);
    h.select("Umbrella in Salesforce");
    h.keys("a");
    let s = screen_at(&h, 80, 24);
    assert!(s.contains("needs salesforce"), "{s}");
}

/// 80×24: the Audit table keeps the event name whole (the surface and the year give way)
/// and the evidence pane scrolls with J/K to the end of a long detail.
#[test]
fn the_audit_tab_at_80x24_keeps_the_event_and_scrolls_the_evidence() {
    let mut h = H::new();
    h.keys("4");
    let s = screen_at(&h, 80, 24);
    assert!(s.contains("action.proposed"), "{s}");
    assert!(!s.contains("surface  "), "{s}");
    assert!(s.contains("more ↓"), "{s}");
    for _ in 0..20 {
        h.keys("J");
        screen_at(&h, 80, 24);
    }
    let end = screen_at(&h, 80, 24);
    assert!(end.contains("scroll · end"), "{end}");
    // The last line of the evidence's JSON is on screen.
    let evidence: Vec<&str> = end
        .lines()
        .skip_while(|l| !l.contains("Evidence"))
        .collect();
    assert!(evidence.iter().any(|l| l.contains("│}")), "{end}");
}

/// A warning on the status line (here: what a previous quit left unsent) is not pushed
/// off by background news within seconds; after a while it is.
#[test]
fn background_news_does_not_push_a_warning_off_the_status_line_at_once() {
    let mut h = H::new();
    h.app.set_status(
        dealflow::tui::app::Level::Warn,
        "1 approved but not run (held, or left in the outbox): X runs them",
    );
    h.send(Msg::Status {
        ok: true,
        text: "signed in: execution ready".into(),
    });
    let line = h.screen();
    assert!(line.contains("1 approved but not run"), "{line}");
    h.clock.advance(dealflow::tui::app::STATUS_HOLD_MS + 1);
    h.send(Msg::Status {
        ok: true,
        text: "suggestions (offline planner): nothing new".into(),
    });
    assert!(h.screen().contains("nothing new"));
}

/// Keys typed faster than the store answers each count: `l l l` steps three times, and
/// each step is its own audited change.
#[test]
fn fast_steps_in_permissions_each_count() {
    let mut h = H::new();
    h.keys("3");
    let before = h
        .store
        .load_permissions()
        .unwrap()
        .autonomy_for(ActionKind::SendEmail);
    assert_eq!(before, Autonomy::Review);
    // The three keys reach the model before any store answer is processed.
    let mut effects = Vec::new();
    for _ in 0..3 {
        effects.extend(h.app.update(Msg::Key(KeyEvent::new(
            KeyCode::Char('l'),
            KeyModifiers::NONE,
        ))));
    }
    let changes: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Store(StoreEffect::ChangePermissions(c)) => Some(format!("{c:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(changes.len(), 3);
    assert_eq!(
        changes
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3,
        "{changes:?}"
    );
    h.run_effects(effects);
    let after = h
        .store
        .load_permissions()
        .unwrap()
        .autonomy_for(ActionKind::SendEmail);
    assert_ne!(after, before);
    let audited = h
        .store
        .audit_page(0, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "permissions.changed")
        .count();
    assert_eq!(audited, 3);
}

/// 80×24: an offline suggestion's row shows what it is in the narrow title column, not
/// just the planner's tag; the detail pane still says offline.
#[test]
fn a_narrow_queue_shows_what_an_offline_suggestion_is() {
    let mut h = H::new();
    let mut a = h.action("act-demo-initech-followup");
    a.id = "suggestion-offline-1".into();
    a.title = "[offline] Email dana@initech.example: Following up".into();
    h.store.insert_action(&a).unwrap();
    h.run_effects(vec![Effect::Store(StoreEffect::LoadActions)]);
    h.select("suggestion-offline");
    let s = screen_at(&h, 80, 24);
    // The queue's row (the detail pane below names the kind in full).
    let row = s.lines().find(|l| l.contains("bill@initech")).unwrap();
    assert!(row.contains("Email dana@initec"), "{s}");
    // At 80 columns the kind is its short name, which still tells a send from a draft.
    assert!(row.contains("│  email      bill"), "{row}");
    assert!(s.contains("[offline] Email dana@initech.example"), "{s}");
}

/// `s` cycles the saved views, each showing what its name says.
#[test]
fn s_cycles_the_saved_views() {
    let mut h = H::new();
    let mut seen = Vec::new();
    for _ in 0..5 {
        h.keys("s");
        let t = &h.app.actions;
        let mut ids: Vec<String> = t
            .visible
            .iter()
            .map(|&i| t.rows[i].action.id.clone())
            .collect();
        ids.sort();
        seen.push((t.view.name(), ids));
    }
    let names: Vec<&str> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "low-confidence",
            "over-50k",
            "awaiting-phone",
            "all",
            "queue"
        ]
    );
    assert_eq!(
        seen[0].1,
        ["act-demo-acme-close", "act-demo-hooli-slack"],
        "low confidence"
    );
    assert_eq!(seen[1].1, ["act-demo-acme-close"], "over $50k");
    assert!(seen[2].1.is_empty(), "nothing waits for the phone yet");
    assert_eq!(seen[3].1.len(), 4);
    assert_eq!(seen[4].1.len(), 4);
    // The title bar names the view a person is in.
    assert!(h.screen().contains("view queue"));
}

/// The Permissions tab sets escalation and two approvers as typed rows, audited; a value
/// the store refuses (two approvers without a lead) is shown, not saved.
#[test]
fn escalation_and_two_approvers_are_typed_in_the_permissions_tab() {
    let mut h = H::new();
    h.keys("3");
    // From the end: Slack, Google, MCP, escalation, two approvers.
    h.keys("G");
    for _ in 0..3 {
        h.keys("k");
    }
    h.code(KeyCode::Enter);
    h.keys("4h auth0|team-lead");
    h.code(KeyCode::Enter);
    let p = h.store.load_permissions().unwrap();
    let e = p.escalation.expect("escalation set");
    assert_eq!(
        (e.after_ms, e.to.as_str()),
        (4 * 3_600_000, "auth0|team-lead")
    );
    assert!(
        h.screen().contains("4h → auth0|team-lead"),
        "{}",
        h.screen()
    );
    let last = h.store.audit_page(0, 1000).unwrap().pop().unwrap();
    assert_eq!(last.event, "permissions.changed");
    assert_eq!(last.actor, "user:demo");
    // Two approvers need a lead as the close-won approver: refused and said.
    h.keys("k");
    h.code(KeyCode::Enter);
    h.keys("250000");
    h.code(KeyCode::Enter);
    assert!(h.screen().contains("first name the lead"), "{}", h.screen());
    assert_eq!(
        h.store.load_permissions().unwrap().two_approvers_above,
        None
    );
}

/// A team lead sees on the status bar how many pushes wait on their phone, as the
/// executor reads them with each queue reload; nothing when none wait.
#[test]
fn the_status_bar_tells_a_lead_what_waits_on_their_phone() {
    let mut h = H::new();
    let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(2));
    let count = waiting.clone();
    h.exec.lead_waiting = Some(Arc::new(move || {
        Some(count.load(std::sync::atomic::Ordering::SeqCst))
    }));
    h.run_effects(vec![Effect::Store(StoreEffect::LoadActions)]);
    assert!(
        h.screen().contains("2 on your phone as lead"),
        "{}",
        h.screen()
    );
    waiting.store(0, std::sync::atomic::Ordering::SeqCst);
    h.run_effects(vec![Effect::Store(StoreEffect::LoadActions)]);
    assert!(
        !h.screen().contains("on your phone as lead"),
        "{}",
        h.screen()
    );
}

/// The Audit tab pages from the store (issue 18): it holds a window of the log, never
/// the log; walking it with `j`/`k` visits every entry in order across page edges;
/// `G`/`g` jump to the oldest and newest; a `kind:` filter is answered by the store;
/// a search reads a bounded stretch and says so, and moving past the end reads on.
#[test]
fn the_audit_tab_pages_from_the_store_and_holds_a_window() {
    use dealflow::tui::audit::{HOLD, PAGE};
    let n = 6000;
    let mut h = H::with_setup(None, |s| {
        for i in 1..=n {
            s.append_audit(dealflow::core::audit::NewAuditEntry {
                ts: NOW + i,
                actor: if i == 10 { "user:needle" } else { "agent" }.into(),
                surface: Some(Surface::ActionCenter),
                event: "action.proposed".into(),
                action_id: Some(format!("act-{i}")),
                outcome: "ok".into(),
                detail: serde_json::json!({
                    "kind": if i % 3 == 0 { "send_email" } else { "post_slack" },
                }),
            })
            .unwrap();
        }
    });
    let total = h.store.audit_head().unwrap().0;
    h.keys("4");
    assert_eq!(h.app.audit.rows.len(), PAGE);
    assert!(h.screen().contains(&format!("{total} of {total} entries")));
    assert_eq!(h.app.audit.current().unwrap().seq, total);
    // Down across several page edges: every entry once, in order, the window bounded.
    let mut seen = vec![h.app.audit.current().unwrap().seq];
    for _ in 0..1500 {
        h.keys("j");
        seen.push(h.app.audit.current().unwrap().seq);
        assert!(h.app.audit.rows.len() <= HOLD);
    }
    assert_eq!(seen, ((total - 1500)..=total).rev().collect::<Vec<_>>());
    // Back up past where the window was trimmed.
    for _ in 0..1200 {
        h.keys("k");
        assert!(h.app.audit.rows.len() <= HOLD);
    }
    assert_eq!(h.app.audit.current().unwrap().seq, total - 300);
    // G: the oldest entry; k walks up from it.
    h.keys("G");
    assert_eq!(h.app.audit.current().unwrap().seq, 1);
    assert!(h.screen().contains("│1 "), "{}", h.screen());
    for _ in 0..250 {
        h.keys("k");
    }
    assert_eq!(h.app.audit.current().unwrap().seq, 251);
    // g: the newest again.
    h.keys("g");
    assert_eq!(h.app.audit.current().unwrap().seq, total);
    // kind: answered by the store, the newest match first.
    h.keys("/kind:send_email");
    h.code(KeyCode::Enter);
    let rows = &h.app.audit.rows;
    assert_eq!(rows.len(), PAGE);
    assert!(rows.iter().all(|e| e.detail["kind"] == "send_email"));
    assert_eq!(rows[0].detail["kind"], "send_email");
    assert!(h.screen().contains(&format!("{PAGE}+ of {total} entries")));
    // A search with one match far back: the first stretch finds nothing and says so.
    h.keys("/");
    h.code(KeyCode::Esc);
    h.keys("/needle");
    h.code(KeyCode::Enter);
    assert!(h.app.audit.rows.is_empty());
    let s = h.screen();
    assert!(s.contains("searched back to"), "{s}");
    // Moving past the end reads on, and finds it.
    h.keys("j");
    assert_eq!(h.app.audit.rows.len(), 1);
    assert_eq!(h.app.audit.current().unwrap().actor, "user:needle");
    assert!(!h.screen().contains("searched back to"));
}

/// A Slack post in `state`, created and last changed `ago` ms before NOW.
fn history_action(id: &str, state: ActionState, ago: i64) -> Action {
    let params = ActionParams::PostSlack {
        channel: "#deals".into(),
        text: format!("update {id}"),
    };
    Action {
        id: id.into(),
        original: params.clone(),
        params,
        state,
        version: 1,
        surface: Surface::ActionCenter,
        confidence: 0.8,
        justification: "history".into(),
        title: format!("history {id}"),
        created_at: NOW - ago,
        updated_at: NOW - ago,
        outcome: None,
        evidence: None,
    }
}

/// The Actions tab over a long history (issue 18): every pending action is held and
/// shown, the finished ones a window at a time (the most recently finished first); the
/// title and a last row say how many are not loaded; the end of the list loads the next
/// window, a reload keeps what was loaded, and once all are held the counts go away.
#[test]
fn a_long_history_holds_every_pending_action_and_a_window_of_finished_ones() {
    use dealflow::tui::actions::{FINISHED_PAGE, SavedView};
    let finished = [
        ActionState::Succeeded,
        ActionState::Failed,
        ActionState::Rejected,
    ];
    let mut h = H::with_setup(None, |s| {
        for i in 0..3_000 {
            s.insert_action(&history_action(
                &format!("hist-{i:05}"),
                finished[i % 3],
                1_000_000 + i as i64 * 1000,
            ))
            .unwrap();
        }
        // Pending ones older than all that history: a newest-N window would miss them.
        for i in 0..20 {
            s.insert_action(&history_action(
                &format!("pend-{i:02}"),
                ActionState::Proposed,
                10_000_000_000 + i as i64,
            ))
            .unwrap();
        }
    });
    let store = h.store.clone();
    let count = |states: &[ActionState]| store.count_actions(states).unwrap();
    let pending: Vec<ActionState> = ActionState::ALL
        .into_iter()
        .filter(|s| !s.is_terminal())
        .collect();
    let total_finished = count(&dealflow::tui::actions::finished_states());
    assert!(total_finished >= 3_000);
    let t = &h.app.actions;
    assert_eq!(t.rows.len() - t.finished_held(), count(&pending));
    assert_eq!(t.finished_held(), FINISHED_PAGE);
    assert_eq!(t.finished_total, Some(total_finished));
    // The queue view shows every pending action, the oldest too.
    assert_eq!(t.visible.len(), count(&pending));
    assert!(t.row_by_id("pend-19").is_some());
    let screen = h.screen();
    assert!(
        screen.contains(&format!("200 of {total_finished} finished loaded")),
        "{screen}"
    );
    // The held window is the most recently finished.
    let newest: Vec<String> = h
        .store
        .action_page(&dealflow::store::ActionPage {
            states: dealflow::tui::actions::finished_states(),
            before: None,
            limit: 400,
        })
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    let held = |h: &H| -> std::collections::BTreeSet<String> {
        h.app
            .actions
            .rows
            .iter()
            .filter(|r| r.action.state.is_terminal())
            .map(|r| r.action.id.clone())
            .collect()
    };
    assert_eq!(held(&h), newest[..200].iter().cloned().collect());
    // The all view says what is not loaded on its last line; the end loads the next window.
    h.app.set_view(SavedView::All);
    let not_loaded = format!("{} older finished not loaded", total_finished - 200);
    assert!(h.screen().contains(&not_loaded), "{}", h.screen());
    h.code(KeyCode::End);
    assert_eq!(h.app.actions.finished_held(), 400);
    assert_eq!(held(&h), newest.iter().cloned().collect());
    assert!(
        h.screen()
            .contains(&format!("400 of {total_finished} finished loaded")),
        "{}",
        h.screen()
    );
    // A reload (the 2 s tick) keeps the window, and a newly finished action joins it.
    let first = h.action("pend-00");
    h.store
        .transition(
            "pend-00",
            &dealflow::store::Transition {
                from: ActionState::Proposed,
                version: first.version,
                to: ActionState::Rejected,
                outcome: Some("not now".into()),
                evidence: None,
                at: NOW,
            },
        )
        .unwrap();
    h.run_effects(vec![Effect::Store(StoreEffect::LoadActions)]);
    let t = &h.app.actions;
    assert_eq!(t.finished_held(), 401);
    assert_eq!(t.finished_total, Some(total_finished + 1));
    assert_eq!(t.rows.len() - t.finished_held(), count(&pending));
    assert!(held(&h).contains("pend-00"));
    // Walking to the end again and again loads them all, each once; then no counts.
    for _ in 0..20 {
        h.code(KeyCode::End);
    }
    let t = &h.app.actions;
    assert_eq!(t.finished_held(), total_finished + 1);
    assert_eq!(t.finished_not_held(), 0);
    assert_eq!(t.visible.len(), t.rows.len());
    let ids: std::collections::BTreeSet<&str> =
        t.rows.iter().map(|r| r.action.id.as_str()).collect();
    assert_eq!(ids.len(), t.rows.len(), "no row twice");
    let screen = h.screen();
    assert!(!screen.contains("finished loaded"), "{screen}");
    assert!(!screen.contains("not loaded"), "{screen}");
}
