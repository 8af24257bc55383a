#![allow(clippy::unwrap_used)]
//! The real binary on a pseudo-terminal: `dealflow --sandbox` with no subcommand starts
//! the TUI, a suggestion is edited and approved with keys, runs against the emulated
//! Gmail, and shows up in the store and the audit log. HOME and XDG dirs point into a tempdir so nothing touches the user's files.

use dealflow::core::domain::ActionState;
use dealflow::store::{SqliteStore, Store};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The real binary on a fresh pty of `cols`×`rows`, with its home and XDG dirs in
/// `home` (nothing touches the user's files).
fn dealflow_in_pty(home: &Path, cols: u16, rows: u16, args: &str) -> rexpect::session::PtySession {
    dealflow_in_pty_with(home, cols, rows, args, &[])
}

fn dealflow_in_pty_with(
    home: &Path,
    cols: u16,
    rows: u16,
    args: &str,
    env: &[(&str, &str)],
) -> rexpect::session::PtySession {
    let mut cmd = Command::new("sh");
    // A fresh pty is 0x0: size it before the app starts (crates.md §4.6).
    cmd.arg("-c")
        .arg(format!("stty cols {cols} rows {rows}; exec \"$0\" {args}"))
        .arg(env!("CARGO_BIN_EXE_dealflow"))
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("state"))
        // The sandbox's URL file (which other --sandbox processes join) is per test.
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env_remove("DEALFLOW_SANDBOX_URL_FILE")
        .env_remove("DEALFLOW_SANDBOX_URL")
        .env("DEALFLOW_KEYRING", "file")
        .env("USER", "ptyuser")
        .env("TERM", "xterm-256color")
        .env("NO_COLOR", "1")
        .env_remove("TMUX")
        // The offline planner, whatever the developer's shell has.
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("DEALFLOW_CONFIG")
        .envs(env.iter().copied());
    rexpect::session::spawn_command(cmd, Some(15_000)).unwrap()
}

fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// `/needle` Enter: the queue filtered to the one row it names, the cursor on it.
fn filter_to(p: &mut rexpect::session::PtySession, needle: &str) {
    p.send(&format!("/{needle}")).unwrap();
    p.flush().unwrap();
    pause(200);
    p.send("\r").unwrap();
    p.flush().unwrap();
    pause(200);
}

#[test]
fn edit_approve_and_execute_a_suggestion_in_the_real_tui() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut p = dealflow_in_pty_with(
        home,
        120,
        36,
        "--sandbox",
        &[("DEALFLOW_UI_UNDO_SEND", "2s")],
    );
    p.exp_string("pending").unwrap();
    filter_to(&mut p, "initech");
    // Edit the draft: move to the end of the body, add a line, save.
    p.send("e").unwrap();
    p.flush().unwrap();
    pause(300);
    for _ in 0..12 {
        p.send("\x1b[B").unwrap();
    }
    p.send("\x1b[F").unwrap();
    p.send("\rP.S. edited in a pty").unwrap();
    p.flush().unwrap();
    pause(200);
    p.send_control('s').unwrap();
    p.flush().unwrap();
    pause(500);
    p.send("a").unwrap();
    p.flush().unwrap();
    // An email cannot be unsent: it waits out the undo window in the outbox first.
    p.exp_string("outbox").unwrap();
    // Let the window pass and the execution land, then force a full redraw so words
    // arrive whole.
    pause(3500);
    p.send_control('l').unwrap();
    p.flush().unwrap();
    // ratatui moves the cursor over blanks: match the words, not the phrase.
    // "gmail" is only on screen once the emulated Gmail has answered.
    p.exp_string("gmail").unwrap();
    p.send("q").unwrap();
    p.flush().unwrap();
    let tail = p.exp_eof().unwrap();
    // The terminal is handed back: main screen restored, and the app quit because it
    // was asked to, not on an error (ctrl-l once died on a terminal that does not
    // answer a cursor-position query).
    assert!(tail.contains("\u{1b}[?1049l"), "{tail:?}");
    assert!(!tail.contains("error:"), "{tail:?}");

    let store = SqliteStore::open(&home.join("data/dealflow/sandbox.db")).unwrap();
    let a = store.get_action("act-demo-initech-followup").unwrap();
    assert_eq!(a.state, ActionState::Succeeded, "{:?}", a.outcome);
    assert!(a.is_edited());
    match &a.params {
        dealflow::core::domain::ActionParams::SendEmail(e) => {
            assert!(e.body.ends_with("P.S. edited in a pty"), "{:?}", e.body)
        }
        other => panic!("{other:?}"),
    }
    // The emulated Gmail answered with the message id it stored.
    assert!(a.outcome.unwrap().contains("gmail id"));
    let events: Vec<(String, String)> = store
        .audit_page(0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.action_id.as_deref() == Some("act-demo-initech-followup"))
        .map(|e| (e.event, e.actor))
        .collect();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "action.proposed",
            "action.edited",
            "action.approved",
            "action.executed"
        ]
    );
    // The signed-in identity approved it; $USER ("ptyuser") is not believed.
    assert_eq!(events[2].1, "user:auth0|demo-user");
    assert_eq!(
        store.verify_audit().unwrap(),
        Ok(store.audit_head().unwrap().0)
    );
}

/// Not signed in: the first frame comes up anyway, and the status line (not stderr,
/// which the TUI owns by then) says why nothing can run and what still works.
#[test]
fn without_sign_in_the_tui_starts_and_says_why_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut p = dealflow_in_pty(home, 200, 30, "");
    p.exp_string("pending").unwrap();
    // ratatui moves the cursor over blanks, so the status line arrives word by word.
    for word in [
        "keyring:",
        "auth.client_id",
        "--sandbox);",
        "without",
        "(reviews",
    ] {
        p.exp_string(word).unwrap();
    }
    p.send("q").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();
}

/// The outbox in the real binary: a Slack post approved with `a` waits with a countdown,
/// `u` takes it back before it leaves, and nothing reaches Slack.
#[test]
fn u_takes_back_a_slack_post_waiting_in_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut p = dealflow_in_pty_with(
        home,
        120,
        36,
        "--sandbox",
        &[("DEALFLOW_UI_UNDO_SEND", "20s")],
    );
    p.exp_string("pending").unwrap();
    filter_to(&mut p, "hooli");
    p.send("a").unwrap();
    p.flush().unwrap();
    // The row counts down (drawn above the status bar that names the outbox).
    p.exp_string("sending").unwrap();
    p.exp_string("outbox").unwrap();
    pause(1500);
    p.send("u").unwrap();
    p.flush().unwrap();
    pause(1000);
    p.send_control('l').unwrap();
    p.flush().unwrap();
    p.exp_string("withdrawn").unwrap();
    p.send("q").unwrap();
    p.flush().unwrap();
    let tail = p.exp_eof().unwrap();
    assert!(!tail.contains("error:"), "{tail:?}");

    let store = SqliteStore::open(&home.join("data/dealflow/sandbox.db")).unwrap();
    let a = store.get_action("act-demo-hooli-slack").unwrap();
    assert_eq!(a.state, ActionState::Proposed, "{:?}", a.outcome);
    assert_eq!(a.evidence, None);
    let names: Vec<String> = store
        .audit_page(0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.action_id.as_deref() == Some("act-demo-hooli-slack"))
        .map(|e| e.event)
        .collect();
    assert_eq!(
        names,
        ["action.proposed", "action.approved", "action.withdrawn"]
    );
}

/// The agent is alive in the TUI: at start the suggestion engine files what the offline
/// planner sees, and when another terminal moves the sandbox's world on, it notices and
/// proposes again, at the 80×24 an SSH session gets.
#[test]
fn the_suggestion_engine_proposes_at_start_and_when_the_world_moves() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut p = dealflow_in_pty(home, 80, 24, "--sandbox");
    // The status line says what the first run filed (ratatui redraws only changed
    // cells, so look for a piece that is drawn in one go).
    p.exp_string("new suggestion(s) (offline").unwrap();
    let db = home.join("data/dealflow/sandbox.db");
    let before = SqliteStore::open(&db)
        .unwrap()
        .list_actions(&Default::default())
        .unwrap()
        .len();
    assert!(before > 4, "the engine filed beside the 4 demo actions");
    let out = second_terminal(home, &["sandbox", "advance", "30d"]);
    assert!(out.status.success(), "{out:?}");
    // The scripted world moved too: Alice asked for a walk-through of the order form.
    wait_for(home, "a proposal for Alice", |s| {
        actions_to(s, "alice@umbrella.example")
            .iter()
            .any(|a| a.state == ActionState::Proposed)
    });
    // ... and the TUI rings for the new work (the terminal notification names it).
    p.exp_string("to review").unwrap();
    let after = SqliteStore::open(&db)
        .unwrap()
        .list_actions(&Default::default())
        .unwrap();
    assert!(after.len() > before);
    p.send("q").unwrap();
    p.flush().unwrap();
}

/// `dealflow init` at a terminal: it asks for what it needs (the audience has a
/// default), checks the tenant's discovery document, writes the config and offers to
/// sign in.
#[test]
fn init_walks_a_new_user_through_the_tenant_set_up() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sb = rt
        .block_on(dealflow::sandbox::Sandbox::start(None))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut p = dealflow_in_pty(home, 80, 24, "init");
    p.exp_string("Tenant domain").unwrap();
    p.send_line(&sb.base_url()).unwrap();
    p.exp_string("Login client id").unwrap();
    p.send_line("dealflow-cli-sandbox").unwrap();
    p.exp_string("Agent client id").unwrap();
    p.send_line("dealflow-agent-sandbox").unwrap();
    p.exp_string("API audience").unwrap();
    p.send_line("").unwrap();
    p.exp_string("ok    CIBA").unwrap();
    p.exp_string("Sign in now?").unwrap();
    p.send_line("n").unwrap();
    p.exp_string("dealflow login").unwrap();
    let cfg = std::fs::read_to_string(home.join("config/dealflow/config.toml")).unwrap();
    assert!(cfg.contains("https://api.dealflow.example"), "{cfg}");
    drop(sb);
}

/// Incremental authorization, walked as a rep on SSH would at 80×24: a scope taken back
/// at the provider (from a second terminal, which joins the TUI's sandbox) makes the
/// next email ask for exactly that scope, and connecting from the Permissions tab asks
/// for it while keeping the rest.
#[test]
fn a_revoked_scope_is_asked_for_exactly_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut p = dealflow_in_pty_with(
        home,
        80,
        24,
        "--sandbox",
        &[("DEALFLOW_UI_UNDO_SEND", "0s")],
    );
    p.exp_string("pending").unwrap();
    wait_for_sandbox(home);
    let out = second_terminal(home, &["sandbox", "revoke", "google", "gmail.send"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(said.contains("took back gmail.send"), "{said}");
    filter_to(&mut p, "initech");
    p.send("a").unwrap();
    p.flush().unwrap();
    p.exp_string("lacks gmail.send").unwrap();
    // The row says so too, not a silent "approved" (the detail pane says why, further
    // down). A full redraw (ctrl-l) writes the words whole.
    pause(300);
    p.send_control('l').unwrap();
    p.flush().unwrap();
    p.exp_string("blocked").unwrap();
    // Permissions tab, the Google row (second from the end), connect.
    p.send("3").unwrap();
    p.flush().unwrap();
    pause(300);
    p.send("G").unwrap();
    p.flush().unwrap();
    pause(200);
    p.send("k").unwrap();
    p.flush().unwrap();
    pause(200);
    p.send("c").unwrap();
    p.flush().unwrap();
    // (Drawn as a diff, word by word: the words in order.)
    for word in ["adding", "gmail.send;", "keeping", "already", "granted"] {
        p.exp_string(word).unwrap();
    }
    p.send("\x1b").unwrap();
    p.flush().unwrap();
    pause(200);
    p.send("q").unwrap();
    p.flush().unwrap();
}

#[test]
fn mcp_install_write_asks_on_the_terminal_and_no_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let file = home.join(".cursor/mcp.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let original = "{\"mcpServers\": {}}\n";
    std::fs::write(&file, original).unwrap();
    let mut p = dealflow_in_pty(home, 100, 24, "mcp install --client cursor --write");
    p.exp_string("+ \"dealflow\"").unwrap();
    p.exp_string("[y/N]").unwrap();
    p.send_line("").unwrap();
    p.exp_string("not written").unwrap();
    p.exp_eof().unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    let mut p = dealflow_in_pty(home, 100, 24, "mcp install --client cursor --write");
    p.exp_string("[y/N]").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("mcp.json.bak").unwrap();
    p.exp_eof().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        v["mcpServers"]["dealflow"]["args"],
        serde_json::json!(["mcp"])
    );
}

/// Another terminal on the same box, joining the TUI's sandbox through its URL file.
fn second_terminal(home: &Path, args: &[&str]) -> std::process::Output {
    dealflow_beside(home, args).output().unwrap()
}

/// Another dealflow process of the same user beside the TUI (same home, keyring and
/// sandbox URL file), not yet started.
fn dealflow_beside(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dealflow"));
    c.args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("DEALFLOW_KEYRING", "file")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c
}

/// The first frame comes before the sandbox is up: waits for the URL file it publishes
/// (URL and key), which the second terminal's commands join through.
fn wait_for_sandbox(home: &Path) {
    let url_file = home.join("run/dealflow/sandbox.url");
    for _ in 0..300 {
        if std::fs::read_to_string(&url_file).is_ok_and(|s| s.lines().count() == 2) {
            return;
        }
        pause(50);
    }
    panic!("no sandbox URL file at {} after 15 s", url_file.display());
}

/// Approves the first push on the sandbox phone from a second terminal, retrying every
/// 100 ms until one has arrived, `tries` times.
fn approve_on_phone(home: &Path, tries: u32) {
    assert!(
        try_approve_on_phone(home, tries),
        "no push reached the phone"
    );
}

/// Approves the first push on the phone, trying every 100 ms; whether one came.
fn try_approve_on_phone(home: &Path, tries: u32) -> bool {
    (0..tries).any(|_| {
        let ok = second_terminal(home, &["sandbox", "phone", "--approve", "1"])
            .status
            .success();
        if !ok {
            pause(100);
        }
        ok
    })
}

/// Polls the sandbox store until `done` holds (the TUI and the engine write it from
/// another process), or fails saying what it waited for.
fn wait_for(home: &Path, what: &str, done: impl Fn(&SqliteStore) -> bool) {
    let db = home.join("data/dealflow/sandbox.db");
    for _ in 0..300 {
        if let Ok(s) = SqliteStore::open(&db)
            && done(&s)
        {
            return;
        }
        pause(100);
    }
    panic!("waited 30 s for {what}");
}

fn actions_to(s: &SqliteStore, target: &str) -> Vec<dealflow::core::domain::Action> {
    s.list_actions(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|a| a.params.target() == target)
        .collect()
}

/// The loop the product is for, walked as a rep at 80×24 with no API key: the world
/// moves, the agent proposes, five similar approvals raise a nudge, the accepted rule
/// runs the next similar suggestion (audited with the rule), and a kind set to `ciba`
/// waits for the phone and runs on its yes.
#[test]
fn trust_builds_from_approvals_to_a_rule_and_the_device_gate_holds() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut p = dealflow_in_pty_with(
        home,
        80,
        24,
        "--sandbox",
        &[("DEALFLOW_UI_UNDO_SEND", "0s")],
    );
    p.exp_string("new suggestion(s) (offline").unwrap();
    wait_for_sandbox(home);
    // Two days go by: Initech's regional teams land in the CRM, stale.
    let out = second_terminal(home, &["sandbox", "advance", "2d"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Initech regional teams"));
    let team = ["dana", "milton", "samir", "michael", "joanna"];
    wait_for(home, "five follow-ups proposed", |s| {
        team.iter().all(|t| {
            actions_to(s, &format!("{t}@initech.example"))
                .iter()
                .any(|a| a.state == ActionState::Proposed && a.confidence >= 0.9)
        })
    });
    // Approve each unedited, from the keyboard.
    for t in team {
        filter_to(&mut p, &format!("{t}@"));
        p.send("a").unwrap();
        p.flush().unwrap();
        pause(300);
        p.send("/\x1b").unwrap();
        p.flush().unwrap();
        pause(200);
    }
    wait_for(home, "five follow-ups sent", |s| {
        team.iter().all(|t| {
            actions_to(s, &format!("{t}@initech.example"))
                .iter()
                .any(|a| a.state == ActionState::Succeeded)
        })
    });
    // The nudge appears on the status bar; accept it in the Trust popup.
    p.exp_string("1 nudge").unwrap();
    p.send("n").unwrap();
    p.flush().unwrap();
    p.exp_string("Nudges").unwrap();
    // A popup ignores keys for its first second (the input guard): wait it out.
    pause(1200);
    p.send("\r").unwrap();
    p.flush().unwrap();
    wait_for(home, "the accepted rule", |s| {
        s.load_permissions()
            .unwrap()
            .auto_rules
            .iter()
            .any(|r| r.target == "@initech.example")
    });
    p.send("\x1b").unwrap();
    p.flush().unwrap();
    // The next similar suggestion runs on the rule, and the audit says which rule.
    let out = second_terminal(home, &["sandbox", "advance", "1d"]);
    assert!(out.status.success(), "{out:?}");
    wait_for(home, "the sixth follow-up to run on the rule", |s| {
        actions_to(s, "peter@initech.example")
            .iter()
            .any(|a| a.state == ActionState::Succeeded)
    });
    // (Drawn as a diff, word by word: the words in order.)
    for word in ["planner):", "ran", "your", "rules"] {
        p.exp_string(word).unwrap();
    }
    let store = SqliteStore::open(&home.join("data/dealflow/sandbox.db")).unwrap();
    let peter = actions_to(&store, "peter@initech.example").remove(0);
    let approved = store
        .audit_page(0, 10_000)
        .unwrap()
        .into_iter()
        .find(|e| e.event == "action.approved" && e.action_id.as_deref() == Some(&peter.id))
        .unwrap();
    assert!(
        approved.detail["reasons"]
            .to_string()
            .contains("auto-approve rule"),
        "{}",
        approved.detail
    );
    // Meetings now need the device: the next one waits for the push, and runs on yes.
    let out = second_terminal(
        home,
        &[
            "--sandbox",
            "permissions",
            "autonomy",
            "schedule_meeting",
            "ciba",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = second_terminal(home, &["sandbox", "advance", "1d"]);
    assert!(out.status.success(), "{out:?}");
    wait_for(home, "the Hooli demo queued for the device", |s| {
        actions_to(s, "gavin@hooli.example")
            .iter()
            .any(|a| a.state == ActionState::AwaitingConsent)
    });
    let batch = {
        let h = home.to_path_buf();
        std::thread::spawn(move || second_terminal(&h, &["--sandbox", "batch"]))
    };
    approve_on_phone(home, 200);
    let out = batch.join().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 succeeded"), "{said}");
    wait_for(home, "the meeting booked", |s| {
        actions_to(s, "gavin@hooli.example")
            .iter()
            .any(|a| a.state == ActionState::Succeeded && a.kind().as_str() == "schedule_meeting")
    });
    p.send("q").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();
}

/// A meeting's time is a form field in local time, not epoch milliseconds: moved in the
/// editor at 80×24, it is booked at the new time, and the audit records the edit.
#[test]
fn a_meetings_time_is_moved_in_the_form_and_booked_as_edited() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut p = dealflow_in_pty_with(home, 80, 24, "--sandbox", &[("TZ", "UTC")]);
    p.exp_string("pending").unwrap();
    filter_to(&mut p, "pepper");
    p.send("e").unwrap();
    p.flush().unwrap();
    // Title, Attendees, When: the third line, as a person reads it.
    p.exp_string("When:").unwrap();
    pause(300);
    p.send("\x1b[B\x1b[B").unwrap(); // down, down
    p.send("\x1b[H").unwrap(); // home
    p.send_control('k').unwrap(); // delete to the end of the line
    p.send("When: 2030-01-15 09:30 UTC").unwrap();
    p.flush().unwrap();
    pause(300);
    p.send_control('s').unwrap();
    p.flush().unwrap();
    pause(500);
    p.send("a").unwrap();
    p.flush().unwrap();
    let db = home.join("data/dealflow/sandbox.db");
    let booked = 1_894_699_800_000; // 2030-01-15 09:30 UTC
    wait_for(home, "the meeting booked at the new time", |s| {
        let a = s.get_action("act-demo-stark-call").unwrap();
        a.state == ActionState::Succeeded
            && matches!(a.params, dealflow::core::domain::ActionParams::ScheduleMeeting { start, .. } if start == booked)
    });
    let store = SqliteStore::open(&db).unwrap();
    let a = store.get_action("act-demo-stark-call").unwrap();
    assert!(a.is_edited());
    // The length was left alone, so it is exactly what the AI proposed.
    match (&a.params, &a.original) {
        (
            dealflow::core::domain::ActionParams::ScheduleMeeting { start, end, .. },
            dealflow::core::domain::ActionParams::ScheduleMeeting {
                start: s0, end: e0, ..
            },
        ) => assert_eq!(end - start, e0 - s0),
        other => panic!("{other:?}"),
    }
    let events: Vec<String> = store
        .audit_page(0, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action_id.as_deref() == Some("act-demo-stark-call"))
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events,
        [
            "action.proposed",
            "action.edited",
            "action.approved",
            "action.executed"
        ]
    );
    p.send("q").unwrap();
    p.flush().unwrap();
}

/// A rep on SSH with an account switched off: approving asks to connect it first,
/// ctrl-y puts the link on the terminal's clipboard (OSC 52: a link wrapped inside a box
/// cannot be selected whole at 80 columns), the browser step is done, and the same
/// action then runs.
#[test]
fn a_disconnected_account_is_connected_from_the_approval_and_the_action_runs() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut p = dealflow_in_pty_with(
        home,
        80,
        24,
        "--sandbox",
        &[("DEALFLOW_UI_UNDO_SEND", "0s")],
    );
    p.exp_string("pending").unwrap();
    wait_for_sandbox(home);
    let out = second_terminal(
        home,
        &["--sandbox", "accounts", "disconnect", "google-oauth2"],
    );
    assert!(out.status.success(), "{out:?}");
    // The TUI reloads permissions every 2 s: two cycles, for a slow machine.
    pause(4500);
    filter_to(&mut p, "initech");
    p.send("a").unwrap();
    p.flush().unwrap();
    p.exp_string("Account needed").unwrap();
    p.send("c").unwrap();
    p.flush().unwrap();
    p.exp_string("connected-accounts/connect").unwrap();
    p.send_control('y').unwrap();
    p.flush().unwrap();
    let (_, seq) = p.exp_regex("\x1b\\]52;c;[A-Za-z0-9+/=]+\x07").unwrap();
    let b64 = seq
        .trim_start_matches("\x1b]52;c;")
        .trim_end_matches('\x07');
    use base64::Engine;
    let link = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    assert!(
        link.contains("/connected-accounts/connect?ticket="),
        "{link}"
    );
    // The browser step: the consent page redirects to the TUI's loopback callback.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt
        .block_on(async { reqwest::get(&link).await.map(|r| r.status()) })
        .unwrap();
    assert!(status.is_success(), "{status}");
    wait_for(home, "google-oauth2 switched back on", |s| {
        s.load_permissions().unwrap().disconnected.is_empty()
    });
    // The TUI has the fresh permissions once the connect is done: the same key runs it.
    pause(500);
    p.send("a").unwrap();
    p.flush().unwrap();
    wait_for(home, "the follow-up sent", |s| {
        s.get_action("act-demo-initech-followup").unwrap().state == ActionState::Succeeded
    });
    p.send("q").unwrap();
    p.flush().unwrap();
}

/// The pty's output through a terminal emulator (vt100), so a test reads the screen a
/// person sees, not the escape stream.
struct Screen {
    vt: vt100::Parser,
}

impl Screen {
    fn new(cols: u16, rows: u16) -> Screen {
        Screen {
            vt: vt100::Parser::new(
                std::num::NonZero::new(rows).unwrap(),
                std::num::NonZero::new(cols).unwrap(),
                0,
            ),
        }
    }

    /// Waits for `needle` in the stream, feeding everything up to it to the emulator.
    fn expect(&mut self, p: &mut rexpect::session::PtySession, needle: &str) {
        let before = p.exp_string(needle).unwrap();
        self.feed(&before);
        self.vt.process(needle.as_bytes());
    }

    /// Feeds what the app draws until it has been quiet for a moment.
    fn settle(&mut self, p: &mut rexpect::session::PtySession) {
        let mut quiet = 0;
        while quiet < 6 {
            let mut got = String::new();
            while let Some(c) = p.try_read() {
                got.push(c);
            }
            if got.is_empty() {
                quiet += 1;
            } else {
                quiet = 0;
                self.feed(&got);
            }
            pause(50);
        }
    }

    /// rexpect hands the stream over one byte per `char`: put the bytes back together.
    fn feed(&mut self, read: &str) {
        let bytes: Vec<u8> = read.chars().map(|c| c as u32 as u8).collect();
        self.vt.process(&bytes);
    }

    fn text(&self) -> String {
        self.vt.screen().contents()
    }

    /// Reads on until the screen shows `needle` (however it was drawn), or fails with
    /// the screen.
    fn wait_for(&mut self, p: &mut rexpect::session::PtySession, needle: &str) {
        for _ in 0..60 {
            self.settle(p);
            if self.text().contains(needle) {
                return;
            }
        }
        panic!("waited for {needle:?}; the screen:\n{}", self.text());
    }

    /// The rows between the tab bar and the status line: what does not depend on the
    /// temp dir or the clock.
    fn body(&self) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().collect();
        lines[1..lines.len().saturating_sub(2)].join("\n")
    }
}

/// The screens a rep reads, at 80×24 (SSH) and 120×36, as the real binary draws them:
/// every Permissions row reachable, the newest chat reply in view after a long exchange,
/// and the device panel gone once the phone said yes.
#[test]
fn the_permissions_chat_and_device_screens_at_80x24_and_120x36() {
    for (cols, rows) in [(80u16, 24u16), (120, 36)] {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let mut p = dealflow_in_pty_with(home, cols, rows, "--sandbox", &[("TZ", "UTC")]);
        let mut s = Screen::new(cols, rows);
        s.expect(&mut p, "pending");
        wait_for_sandbox(home);
        // Permissions: the last rows are reachable.
        p.send("3").unwrap();
        p.send("G").unwrap();
        p.flush().unwrap();
        s.settle(&mut p);
        let perms = s.body();
        assert!(perms.contains("account · sign-in-with-slack"), "{perms}");
        insta::assert_snapshot!(format!("pty_permissions_bottom_{cols}x{rows}"), perms);
        // Chat: after a long exchange the newest reply is on screen.
        p.send("2").unwrap();
        p.flush().unwrap();
        s.settle(&mut p);
        for ask in [
            "list deals",
            "check calendar",
            "list deals",
            "what's going on with globex?",
        ] {
            p.send("i").unwrap();
            p.send(ask).unwrap();
            p.send("\r").unwrap();
            p.flush().unwrap();
            s.settle(&mut p);
            p.send("\x1b").unwrap();
            p.flush().unwrap();
            s.settle(&mut p);
        }
        let chat = s.text();
        assert!(chat.contains("Globex analytics pilot"), "{chat}");
        assert!(chat.contains("Looking up Globex analytics pilot"), "{chat}");
        // A device-gated write: the panel counts down, and comes down on the phone's yes.
        let out = second_terminal(
            home,
            &[
                "--sandbox",
                "permissions",
                "autonomy",
                "draft_email",
                "ciba",
            ],
        );
        assert!(out.status.success(), "{out:?}");
        pause(2500);
        p.send("i").unwrap();
        p.send("draft a follow-up to bill").unwrap();
        p.send("\r").unwrap();
        p.flush().unwrap();
        s.wait_for(&mut p, "Waiting for your device");
        approve_on_phone(home, 100);
        // The device poll answers within its interval; then the panel comes down.
        s.wait_for(&mut p, "approved on the device");
        s.settle(&mut p);
        let after = s.text();
        assert!(!after.contains("Waiting for your device"), "{after}");
        assert!(after.contains("draft saved"), "{after}");
        p.send("\x1b").unwrap();
        p.send("q").unwrap();
        p.flush().unwrap();
    }
}

/// The background worker against the sandbox while a TUI also runs (issue 23): the
/// world moves, a proposal is filed once (the TUI's engine and the service's take the
/// same lease), the service's gatherer pushes the device queue once, the phone's yes
/// runs each action once; the TUI's status bar shows the service; SIGTERM stops it
/// cleanly and `service status` then says it is not running.
#[test]
fn the_service_proposes_and_pushes_once_beside_a_tui() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut p = dealflow_in_pty_with(home, 80, 24, "--sandbox", &[]);
    p.exp_string("new suggestion(s) (offline").unwrap();
    wait_for_sandbox(home);
    // Follow-up emails wait for the device, so the gatherer has something to push.
    let out = second_terminal(
        home,
        &["--sandbox", "permissions", "autonomy", "send_email", "ciba"],
    );
    assert!(out.status.success(), "{out:?}");
    let start_service = || {
        let log = std::fs::File::create(home.join("service.log")).unwrap();
        dealflow_beside(
            home,
            &["--sandbox", "service", "run", "--batch-every", "1s"],
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
    };
    let mut service = start_service();
    let status_file = home.join("state/dealflow/sandbox-service.json");
    for _ in 0..300 {
        if status_file.exists() {
            break;
        }
        pause(100);
    }
    let out = second_terminal(home, &["--sandbox", "service", "status"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("worker:    running, pid"), "{said}");
    // Two days go by: five stale Initech teams; their follow-ups need the device.
    let out = second_terminal(home, &["sandbox", "advance", "2d"]);
    assert!(out.status.success(), "{out:?}");
    let team = ["dana", "milton", "samir", "michael", "joanna"];
    wait_for(home, "the follow-ups filed for the device", |s| {
        team.iter()
            .all(|t| !actions_to(s, &format!("{t}@initech.example")).is_empty())
    });
    // Approve each push the service sends until every follow-up ran.
    let service_log = || std::fs::read_to_string(home.join("service.log")).unwrap_or_default();
    let mut done = false;
    for _ in 0..10 {
        let approved = try_approve_on_phone(home, 300);
        assert!(
            approved,
            "no push reached the phone; the service said:\n{}",
            service_log()
        );
        let db = home.join("data/dealflow/sandbox.db");
        let all_ran = |s: &SqliteStore| {
            team.iter().all(|t| {
                actions_to(s, &format!("{t}@initech.example"))
                    .iter()
                    .all(|a| a.state == ActionState::Succeeded)
            })
        };
        // The gatherer polls the device at the interval CIBA gives (5 s in the sandbox).
        for _ in 0..300 {
            if SqliteStore::open(&db).is_ok_and(|s| all_ran(&s)) {
                done = true;
                break;
            }
            pause(100);
        }
        if done {
            break;
        }
    }
    assert!(
        done,
        "the follow-ups did not all run; the service said:\n{}",
        service_log()
    );
    let store = SqliteStore::open(&home.join("data/dealflow/sandbox.db")).unwrap();
    let audit = store.audit_page(0, 100_000).unwrap();
    for t in team {
        // Filed once, though two engines were watching.
        let filed = actions_to(&store, &format!("{t}@initech.example"));
        assert_eq!(filed.len(), 1, "{t}: {filed:?}");
        let id = &filed[0].id;
        // Pushed once and sent once.
        let pushed = audit
            .iter()
            .filter(|e| e.event == "batch.requested" && e.detail.to_string().contains(id.as_str()))
            .count();
        assert_eq!(pushed, 1, "{t}: pushed {pushed} times");
        let sent = audit
            .iter()
            .filter(|e| e.event == "action.executed" && e.action_id.as_deref() == Some(id.as_str()))
            .count();
        assert_eq!(sent, 1, "{t}: executed {sent} times");
    }
    // The TUI's status bar shows the service (a full redraw, read as a screen).
    let mut screen = Screen::new(80, 24);
    p.send("\x0c").unwrap();
    p.flush().unwrap();
    screen.wait_for(&mut p, " service · ");
    // SIGTERM (systemd's stop) ends it cleanly.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(service.id() as libc::pid_t, libc::SIGTERM) };
    let mut exited = None;
    for _ in 0..300 {
        if let Some(s) = service.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        pause(100);
    }
    let exited = exited.expect("the service did not stop on SIGTERM");
    let log = std::fs::read_to_string(home.join("service.log")).unwrap();
    assert!(exited.success(), "{exited:?}\n{log}");
    assert!(log.contains("service stopped"), "{log}");
    let out = second_terminal(home, &["--sandbox", "service", "status"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("not running (stopped"), "{said}");
    // Which engine filed (the TUI's or the service's) is whichever took the lease first.
    assert!(said.contains("suggested: "), "{said}");
    assert!(said.contains("batch:     "), "{said}");
    // A service killed outright: the next one starts at once (the dead pid's lease is
    // taken over), and once it is killed too, status says it died.
    let mut again = start_service();
    let pid = again.id();
    for _ in 0..300 {
        let text = std::fs::read_to_string(&status_file).unwrap_or_default();
        if text.contains(&format!("\"pid\": {pid}")) && !text.contains("\"stopped\": 1") {
            break;
        }
        pause(100);
    }
    let out = second_terminal(home, &["--sandbox", "service", "status"]);
    assert!(out.status.success(), "{out:?}");
    again.kill().unwrap();
    again.wait().unwrap();
    let out = second_terminal(home, &["--sandbox", "service", "status"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("ended without stopping"), "{said}");
    // doctor counts it as a problem and says where to look.
    let out = second_terminal(home, &["--sandbox", "doctor"]);
    let said = String::from_utf8_lossy(&out.stdout);
    let line = said
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("service"))
        .unwrap_or_default();
    assert!(
        line.starts_with("FAIL") && line.contains("journalctl"),
        "{said}"
    );
    p.send("q").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();
}

/// `b` sends the current action to the device batch from the TUI: it is queued (off
/// the UI task), one push reaches the phone, and on yes it runs.
#[test]
fn b_sends_the_current_action_to_the_phone_and_it_runs_on_yes() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut p = dealflow_in_pty_with(home, 80, 24, "--sandbox", &[]);
    let mut screen = Screen::new(80, 24);
    screen.expect(&mut p, "pending");
    wait_for_sandbox(home);
    // (Pressed before sign-in finishes, `b` would wait in the deferred queue; this
    // waits so the status lines below are this test's.)
    screen.wait_for(&mut p, "planner):");
    let before: Vec<_> = {
        let s = SqliteStore::open(&home.join("data/dealflow/sandbox.db")).unwrap();
        s.list_actions(&Default::default())
            .unwrap()
            .into_iter()
            .filter(|a| a.state == ActionState::AwaitingConsent)
            .collect()
    };
    assert!(before.is_empty(), "{before:?}");
    p.send("b").unwrap();
    p.flush().unwrap();
    screen.wait_for(&mut p, "1 queued: approve the push on your phone");
    approve_on_phone(home, 300);
    screen.wait_for(&mut p, "batch: 1 succeeded");
    let s = SqliteStore::open(&home.join("data/dealflow/sandbox.db")).unwrap();
    let ran: Vec<_> = s
        .audit_page(0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "action.executed")
        .collect();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert!(ran[0].actor.starts_with("device:"), "{:?}", ran[0]);
    p.send("q").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();
}

/// Reads what the app writes until `needle` and then until it has been quiet a moment:
/// the raw bytes (escape sequences included) and the screen they draw.
fn raw_until(p: &mut rexpect::session::PtySession, needle: &str, screen: &mut Screen) -> Vec<u8> {
    let before = p.exp_string(needle).unwrap();
    let mut raw: Vec<u8> = before.chars().map(|c| c as u32 as u8).collect();
    raw.extend_from_slice(needle.as_bytes());
    let mut quiet = 0;
    while quiet < 10 {
        let mut got = Vec::new();
        while let Some(c) = p.try_read() {
            got.push(c as u32 as u8);
        }
        if got.is_empty() {
            quiet += 1;
        } else {
            quiet = 0;
            raw.extend_from_slice(&got);
        }
        pause(50);
    }
    screen.vt.process(&raw);
    raw
}

fn coloured_cells(screen: &Screen) -> usize {
    let s = screen.vt.screen();
    let (rows, cols) = s.size();
    let (rows, cols) = (rows.get(), cols.get());
    (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .filter_map(|(r, c)| s.cell(r, c))
        .filter(|cell| {
            cell.fgcolor() != vt100::Color::Default || cell.bgcolor() != vt100::Color::Default
        })
        .count()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// New work rings the terminal (BEL plus OSC 9 / OSC 777 desktop notifications) unless
/// `ui.notify` is off, and colour follows NO_COLOR from the environment: none when it
/// is set to anything, colour when it is empty (no-color.org).
#[test]
fn notifications_and_colour_follow_the_settings_and_the_environment() {
    let run = |env: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        let mut p = dealflow_in_pty_with(dir.path(), 80, 24, "--sandbox", env);
        let mut screen = Screen::new(80, 24);
        // The engine's first run files suggestions: new work for a person to review.
        let raw = raw_until(&mut p, "new suggestion(s) (offline", &mut screen);
        p.send("q").unwrap();
        p.flush().unwrap();
        (raw, coloured_cells(&screen))
    };
    let (raw, colour) = run(&[("NO_COLOR", "")]);
    assert!(
        contains(&raw, b"\x1b]9;dealflow: "),
        "OSC 9 rings for new work"
    );
    assert!(contains(&raw, b"\x1b]777;notify;dealflow: "), "and OSC 777");
    assert!(colour > 0, "an empty NO_COLOR leaves colour on");

    let (raw, colour) = run(&[("NO_COLOR", "1"), ("DEALFLOW_UI_NOTIFY", "false")]);
    assert!(
        !contains(&raw, b"\x1b]9;"),
        "ui.notify = false rings nothing"
    );
    assert!(!contains(&raw, b"\x1b]777;"));
    assert_eq!(colour, 0, "NO_COLOR=1: not one coloured cell");
}
