//! The real binary: config errors, precedence, the scriptable queue, audit verify/export.

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use std::path::Path;

#[path = "cli/accounts.rs"]
mod accounts;
#[path = "cli/import.rs"]
mod import;
#[path = "cli/policy.rs"]
mod policy;
#[path = "cli/salesforce.rs"]
mod salesforce;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("dealflow").unwrap();
        c.env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("cfg"))
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("DEALFLOW_KEYRING", "file")
            .env("USER", "tester")
            .timeout(std::time::Duration::from_secs(60));
        c
    }
    fn sandbox(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        self.cmd().arg("--sandbox").args(args).assert()
    }
    /// The same environment as [`Env::cmd`], for a child the test talks to while it
    /// runs (`sandbox serve`, `batch` waiting for the phone, `login` showing its code).
    fn child(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dealflow"));
        c.env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("cfg"))
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("DEALFLOW_KEYRING", "file")
            .env("USER", "tester")
            .args(args);
        c
    }
    fn write_config(&self, text: &str) -> std::path::PathBuf {
        let p = self.dir.path().join("cfg/dealflow/config.toml");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("data/dealflow/sandbox.db")
    }
}

fn out(a: &assert_cmd::assert::Assert) -> (String, String, Option<i32>) {
    let o = a.get_output();
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code(),
    )
}

#[test]
fn a_config_typo_names_file_line_key_and_hint() {
    let e = Env::new();
    let p = e.write_config("[ui]\ntheme = \"dark\"\nmouze = true\n");
    let a = e.cmd().arg("status").assert().failure();
    let (_, err, code) = out(&a);
    assert_eq!(code, Some(1));
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(&format!("{}:3:1", p.display())), "{err}");
    assert!(err.contains("unknown key `ui.mouze`"), "{err}");
    assert!(err.contains("did you mean `mouse`"), "{err}");
}

#[test]
fn malformed_toml_and_bad_values_are_located() {
    let e = Env::new();
    let p = e.write_config("[batch]\nwindow = \"10m\"\nconcurrency = \"four\"\n");
    let (_, err, _) = out(&e.cmd().arg("status").assert().failure());
    assert!(err.contains(&format!("{}:3", p.display())), "{err}");
    assert!(
        err.contains("concurrency") || err.contains("integer"),
        "{err}"
    );

    let p = e.write_config("[store\npath = 1\n");
    let (_, err, _) = out(&e.cmd().arg("status").assert().failure());
    assert!(err.contains(&format!("{}:1", p.display())), "{err}");

    // An outbox longer than anyone would wait is a mistake, named with its line.
    let p = e.write_config("[ui]\ntheme = \"dark\"\nundo_send = \"2h\"\n");
    let (_, err, _) = out(&e.cmd().arg("status").assert().failure());
    assert!(
        err.contains(&format!("{}:3", p.display())) && err.contains("ui.undo_send"),
        "{err}"
    );

    let p = e.write_config("[ui]\ntheme = \"drak\"\n");
    let (_, err, _) = out(&e.cmd().arg("status").assert().failure());
    assert!(
        err.contains(&format!("{}:2", p.display())) && err.contains("did you mean \"dark\""),
        "{err}"
    );

    let (_, err, _) = out(&e
        .cmd()
        .args(["--config", "/nonexistent/x.toml", "status"])
        .assert()
        .failure());
    assert!(err.contains("/nonexistent/x.toml: no such file"), "{err}");
}

#[test]
fn flags_beat_env_beat_file() {
    let e = Env::new();
    e.write_config("[ui]\ntheme = \"light\"\n[batch]\nconcurrency = 3\n");
    let (o, _, _) = out(&e.cmd().args(["config", "check"]).assert().success());
    assert!(o.contains("theme = \"light\""), "{o}");
    let (o, _, _) = out(&e
        .cmd()
        .env("DEALFLOW_UI_THEME", "dark")
        .args(["config", "check"])
        .assert()
        .success());
    assert!(
        o.contains("theme = \"dark\"") && o.contains("concurrency = 3"),
        "{o}"
    );
    let (o, _, _) = out(&e
        .cmd()
        .env("DEALFLOW_UI_THEME", "dark")
        .args(["--theme", "high-contrast", "config", "check"])
        .assert()
        .success());
    assert!(o.contains("theme = \"high-contrast\""), "{o}");
    let (_, err, _) = out(&e
        .cmd()
        .env("DEALFLOW_BATCH_CONCURRENCY", "0")
        .args(["config", "check"])
        .assert()
        .failure());
    assert!(
        err.contains("environment variable DEALFLOW_BATCH_CONCURRENCY"),
        "{err}"
    );
}

#[test]
fn the_example_config_parses_and_documents_every_key() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"))
            .unwrap();
    let table: toml::Table = text.parse().unwrap();
    for key in dealflow::config::all_keys() {
        let (_, k) = key.rsplit_once('.').unwrap();
        let root = toml::Value::Table(table.clone());
        let mut v = Some(&root);
        for part in key.split('.') {
            v = v.and_then(|t| t.get(part));
        }
        assert!(v.is_some(), "config.example.toml lacks {key}");
        let line = text
            .lines()
            .position(|l| l.starts_with(&format!("{k} =")) || l == format!("[{key}]"))
            .unwrap();
        assert!(
            text.lines().nth(line - 1).unwrap().starts_with('#')
                || text.lines().nth(line + 1).unwrap().starts_with('#'),
            "{key} has no comment above it"
        );
    }
    let e = Env::new();
    e.cmd()
        .args([
            "--config",
            &format!("{}/config.example.toml", env!("CARGO_MANIFEST_DIR")),
            "config",
            "check",
        ])
        .assert()
        .success();
}

#[test]
fn the_queue_is_scriptable_and_every_decision_is_audited() {
    let e = Env::new();
    let (o, _, _) = out(&e.sandbox(&["actions", "list", "--json"]).success());
    let list: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4);

    // Review gate: a plain approve is the review.
    let (o, _, _) = out(&e
        .sandbox(&[
            "actions",
            "approve",
            "act-demo-initech-followup",
            "--hold",
            "--json",
        ])
        .success());
    let a: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(a["state"], "approved");
    assert_eq!(a["evidence"]["by"], "reviewed");
    // The sandbox's signed-in identity, not $USER (which says "tester").
    assert_eq!(a["evidence"]["actor"], "user:auth0|demo-user");

    // Step-up gate: without a terminal or --confirm nothing is approved.
    let (_, err, _) = out(&e
        .sandbox(&["actions", "approve", "act-demo-acme-close"])
        .failure());
    assert!(err.contains("needs step-up"), "{err}");
    let (o, _, _) = out(&e
        .sandbox(&["actions", "show", "act-demo-acme-close", "--json"])
        .success());
    let shown: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(shown["action"]["state"], "proposed");
    assert_eq!(shown["decision"]["gate"]["gate"], "step_up");
    let (o, _, _) = out(&e
        .sandbox(&[
            "actions",
            "approve",
            "act-demo-acme-close",
            "--confirm",
            "act-demo-acme-close",
            "--json",
        ])
        .success());
    let a: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(a["evidence"]["by"], "stepped_up");
    assert_eq!(
        a["state"], "succeeded",
        "approving executes: the deal is closed"
    );
    assert_eq!(a["outcome"], "closed Acme platform renewal as won");
    let (o, _, _) = out(&e.sandbox(&["status"]).success());
    assert!(o.contains("deal-acme") && o.contains("closed_won"), "{o}");

    // Editing an approved action voids its consent.
    let (o, _, _) = out(&e
        .sandbox(&[
            "actions",
            "edit",
            "act-demo-initech-followup",
            "--set",
            "subject=Quick question, Bill",
            "--json",
        ])
        .success());
    let a: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(a["state"], "proposed");
    assert_eq!(a["evidence"], serde_json::Value::Null);
    assert_eq!(a["params"]["subject"], "Quick question, Bill");
    assert_eq!(
        a["original"]["subject"],
        "Following up on the Initech seat expansion"
    );
    let (_, err, _) = out(&e
        .sandbox(&[
            "actions",
            "edit",
            "act-demo-initech-followup",
            "--set",
            "to=not-an-address",
        ])
        .failure());
    assert!(
        err.contains("invalid edit") && err.contains("not an email address"),
        "{err}"
    );

    let (_, _, _) = out(&e
        .sandbox(&[
            "actions",
            "reject",
            "act-demo-hooli-slack",
            "--reason",
            "wrong channel",
        ])
        .success());

    let (o, _, _) = out(&e
        .sandbox(&["audit", "export", "--format", "jsonl"])
        .success());
    let events: Vec<String> = o
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        events[4..],
        [
            "action.approved",
            "action.approve_refused",
            "action.approved",
            "action.executed",
            "action.edited",
            "action.rejected"
        ]
    );
    let (o, err, _) = out(&e.sandbox(&["audit", "verify"]).success());
    assert!(o.contains("10 entries verified"), "{o}");
    // Piped: no progress bar (it is drawn only on a terminal).
    assert!(!err.contains('\r') && !err.contains("] "), "{err}");
}

#[test]
fn audit_verify_names_the_first_tampered_entry_and_export_writes_csv() {
    let e = Env::new();
    e.sandbox(&["permissions", "threshold", "25000"]).success();
    e.sandbox(&["permissions", "autonomy", "post_slack", "step_up"])
        .success();
    let (o, _, _) = out(&e.sandbox(&["audit", "export", "--format", "csv"]).success());
    let mut rdr = csv::Reader::from_reader(o.as_bytes());
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(&rows[4][4], "permissions.changed");
    assert!(rows[4][7].contains("$50,000 -> $25,000"));

    let c = rusqlite::Connection::open(e.db()).unwrap();
    c.execute(
        "UPDATE audit SET detail = '{\"summary\":\"nothing to see\"}' WHERE seq = 5",
        [],
    )
    .unwrap();
    let (_, err, code) = out(&e.sandbox(&["audit", "verify"]).failure());
    assert_eq!(code, Some(1));
    assert!(err.contains("entry #5") && err.contains("altered"), "{err}");
    let (o, _, _) = out(&e.sandbox(&["doctor"]).failure());
    assert!(o.contains("FAIL  audit"), "{o}");
}

#[test]
fn permissions_refuse_unsafe_settings() {
    let e = Env::new();
    let (_, err, _) = out(&e
        .sandbox(&["permissions", "close-won", "auto", "self"])
        .failure());
    assert!(err.contains("at least step_up"), "{err}");
    let (_, err, _) = out(&e
        .sandbox(&["permissions", "autonomy", "send_emial", "auto"])
        .failure());
    assert!(err.contains("unknown action kind"), "{err}");
    e.sandbox(&["permissions", "auto-approve", "0.9"]).success();
    let (o, _, _) = out(&e.sandbox(&["permissions", "show", "--json"]).success());
    let p: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(p["confidence"]["auto_approve_at"], 0.9);
}

#[test]
fn budgets_are_set_shown_removed_and_audited() {
    let e = Env::new();
    // A new store starts with the generous defaults.
    let (o, _, _) = out(&e.sandbox(&["permissions", "show"]).success());
    assert!(
        o.contains("budget               send_email: 50 per day without review"),
        "{o}"
    );
    let (o, _, _) = out(&e
        .sandbox(&["permissions", "budget", "send_email", "20/day"])
        .success());
    assert!(
        o.contains("budget send_email: 20 per day (was 50 per day)"),
        "{o}"
    );
    e.sandbox(&["permissions", "budget", "send_email", "3/day", "--each"])
        .success();
    let (_, err, _) = out(&e
        .sandbox(&["permissions", "budget", "list_deals", "5/day"])
        .failure());
    assert!(err.contains("is a read"), "{err}");
    let (_, err, _) = out(&e
        .sandbox(&["permissions", "budget", "send_email", "lots"])
        .failure());
    assert!(err.contains("N/hour, N/day or N/week"), "{err}");
    let (o, _, _) = out(&e.sandbox(&["permissions", "show"]).success());
    assert!(o.contains("send_email: 20 per day without review"), "{o}");
    assert!(
        o.contains("send_email: 3 per day to one counterparty without review"),
        "{o}"
    );
    // Removing the per-counterparty one leaves the kind's own budget.
    e.sandbox(&["permissions", "budget", "send_email", "off", "--each"])
        .success();
    let (o, _, _) = out(&e.sandbox(&["permissions", "show", "--json"]).success());
    let p: serde_json::Value = serde_json::from_str(&o).unwrap();
    let emails: Vec<&serde_json::Value> = p["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["kind"] == "send_email")
        .collect();
    assert_eq!(emails.len(), 1, "{o}");
    assert_eq!(emails[0]["limit"], 20);
    use dealflow::store::Store;
    let changes: Vec<String> = dealflow::store::SqliteStore::open(&e.db())
        .unwrap()
        .audit_page(0, 1000)
        .unwrap()
        .into_iter()
        .filter(|a| a.event == "permissions.changed")
        .filter_map(|a| a.detail["summary"].as_str().map(str::to_string))
        .collect();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(changes[2].contains("1 budget for send_email to one counterparty removed"));
}

/// A script reads an action, someone edits it, the script approves: the approval names
/// the version it read and is refused, so nothing is approved unseen.
#[test]
fn approve_with_expect_version_refuses_an_action_edited_since() {
    let e = Env::new();
    let id = "act-demo-initech-followup";
    let (o, _, _) = out(&e.sandbox(&["actions", "show", id, "--json"]).success());
    let shown: serde_json::Value = serde_json::from_str(&o).unwrap();
    let read = shown["action"]["version"].as_i64().unwrap();
    // Someone else edits it in between.
    e.sandbox(&[
        "actions",
        "edit",
        id,
        "--set",
        "subject=\"Changed behind you\"",
    ])
    .success();
    let (_, err, _) = out(&e
        .sandbox(&[
            "actions",
            "approve",
            id,
            "--hold",
            "--expect-version",
            &read.to_string(),
        ])
        .failure());
    assert!(
        err.contains(&format!(
            "changed since you looked at it (v{read} → v{})",
            read + 1
        )),
        "{err}"
    );
    let (o, _, _) = out(&e.sandbox(&["actions", "show", id, "--json"]).success());
    let now: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(now["action"]["state"], "proposed");
    // With the version just read, it goes through.
    let (o, _, _) = out(&e
        .sandbox(&[
            "actions",
            "approve",
            id,
            "--hold",
            "--json",
            "--expect-version",
            &(read + 1).to_string(),
        ])
        .success());
    let a: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(a["state"], "approved");
    assert_eq!(a["params"]["subject"], "Changed behind you");
}

/// A do-not-auto pin on a counterparty: whatever autonomy says, anything to it is
/// reviewed, the reason names the pin, and a deal named only by id is caught through its
/// account (which only the store knows).
#[test]
fn pinned_counterparties_are_always_reviewed() {
    let e = Env::new();
    let gate_of = |id: &str| -> serde_json::Value {
        let (o, _, _) = out(&e.sandbox(&["actions", "show", id, "--json"]).success());
        let v: serde_json::Value = serde_json::from_str(&o).unwrap();
        v["decision"].clone()
    };
    e.sandbox(&["permissions", "autonomy", "send_email", "auto"])
        .success();
    assert_eq!(
        gate_of("act-demo-initech-followup")["gate"]["gate"],
        "allow"
    );
    let (o, _, _) = out(&e
        .sandbox(&["permissions", "pin", "@Initech.example"])
        .success());
    assert!(
        o.contains("always review anything to @initech.example"),
        "{o}"
    );
    let d = gate_of("act-demo-initech-followup");
    assert_eq!(d["gate"]["gate"], "review");
    assert!(
        d["reasons"]
            .to_string()
            .contains("@initech.example is pinned"),
        "{d}"
    );
    let (o, _, _) = out(&e.sandbox(&["permissions", "show"]).success());
    assert!(o.contains("always review        @initech.example"), "{o}");

    // A CRM update names the deal, not the account: the store fills that in.
    let update = {
        use dealflow::store::Store;
        let store = dealflow::store::SqliteStore::open(&e.db()).unwrap();
        let mut a = store.get_action("act-demo-acme-close").unwrap();
        a.id = "act-acme-notes".into();
        a.params = dealflow::core::domain::ActionParams::UpdateDeal {
            revision: None,
            deal_id: "deal-acme".into(),
            stage: None,
            amount_cents: None,
            notes: Some("Asked for the 3-year option".into()),
        };
        a.original = a.params.clone();
        a.confidence = 0.95;
        store.insert_action(&a).unwrap();
        a.id
    };
    e.sandbox(&["permissions", "autonomy", "update_deal", "auto"])
        .success();
    assert_eq!(gate_of(&update)["gate"]["gate"], "allow");
    e.sandbox(&["permissions", "pin", "Acme Corp"]).success();
    let d = gate_of(&update);
    assert_eq!(d["gate"]["gate"], "review", "{d}");
    assert!(
        d["reasons"].to_string().contains("acme corp is pinned"),
        "{d}"
    );

    // An account pin also covers an email filed under one of its deals.
    e.sandbox(&["permissions", "unpin", "@initech.example"])
        .success();
    assert_eq!(
        gate_of("act-demo-initech-followup")["gate"]["gate"],
        "allow"
    );
    e.sandbox(&["permissions", "pin", "Initech"]).success();
    let d = gate_of("act-demo-initech-followup");
    assert_eq!(d["gate"]["gate"], "review", "{d}");
    assert!(
        d["reasons"].to_string().contains("initech is pinned"),
        "{d}"
    );
    e.sandbox(&["permissions", "unpin", "initech"]).success();

    // Unpinning is one call, audited; an unknown pin is a clear error.
    e.sandbox(&["permissions", "unpin", "acme corp"]).success();
    assert_eq!(gate_of(&update)["gate"]["gate"], "allow");
    let (_, err, _) = out(&e.sandbox(&["permissions", "unpin", "acme corp"]).failure());
    assert!(err.contains("not pinned"), "{err}");
    use dealflow::store::Store;
    let pins: Vec<String> = dealflow::store::SqliteStore::open(&e.db())
        .unwrap()
        .audit_page(0, 1000)
        .unwrap()
        .into_iter()
        .filter(|a| a.event == "permissions.changed")
        .filter_map(|a| a.detail["summary"].as_str().map(str::to_string))
        .filter(|s| s.contains("pin") || s.contains("always review"))
        .collect();
    assert_eq!(pins.len(), 6, "{pins:?}");
}

#[test]
fn plain_http_is_refused_off_loopback() {
    let e = Env::new();
    let p = e.write_config("[auth]\ndomain = \"http://192.0.2.2:8080\"\nclient_id = \"c\"\n");
    let (_, err, code) = out(&e.cmd().args(["config", "check"]).assert().failure());
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("{}:2", p.display())), "{err}");
    assert!(err.contains("clear text"), "{err}");
    // The API key is guarded the same way.
    e.write_config("[llm]\nbase_url = \"http://api.example:80\"\n");
    let (_, err, _) = out(&e.cmd().args(["config", "check"]).assert().failure());
    assert!(err.contains("llm.base_url"), "{err}");
    // A server on this machine may be plain http.
    e.write_config("[auth]\ndomain = \"http://127.0.0.1:8080\"\nclient_id = \"c\"\n");
    e.cmd().args(["config", "check"]).assert().success();
    e.write_config("[auth]\ndomain = \"http://[::1]:8080\"\nclient_id = \"c\"\n");
    e.cmd().args(["config", "check"]).assert().success();
}

#[test]
fn an_absurd_duration_is_a_config_error_not_a_panic() {
    let e = Env::new();
    let p = e.write_config("[mcp]\nwait_bound = \"18446744073709551615s\"\n");
    let (_, err, code) = out(&e.cmd().args(["config", "check"]).assert().failure());
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("{}:2", p.display())), "{err}");
    assert!(err.contains("longer than 30 days"), "{err}");
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    let e = Env::new();
    e.sandbox(&["status"]).success();
    let bin = assert_cmd::cargo::cargo_bin("dealflow");
    for args in [
        "--sandbox status",
        "completions bash",
        "--sandbox audit export",
    ] {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("\"$0\" {args} 2>\"$1\" | head -c1 >/dev/null"))
            .arg(&bin)
            .arg(e.dir.path().join("stderr"))
            .env("HOME", e.dir.path())
            .env("XDG_DATA_HOME", e.dir.path().join("data"))
            .env("XDG_CONFIG_HOME", e.dir.path().join("cfg"))
            .env("XDG_STATE_HOME", e.dir.path().join("state"))
            .env("DEALFLOW_KEYRING", "file")
            .output()
            .unwrap();
        assert!(o.status.success());
        let err = std::fs::read_to_string(e.dir.path().join("stderr")).unwrap();
        assert!(!err.contains("panicked"), "{args}: {err}");
    }
}

#[test]
fn terminal_escapes_never_reach_the_screen() {
    let e = Env::new();
    e.sandbox(&["actions", "list"]).success();
    // An edit that would smuggle an escape into a channel is refused at validation.
    let (_, err, _) = out(&e
        .sandbox(&[
            "actions",
            "edit",
            "act-demo-hooli-slack",
            "--set",
            "channel=#general\u{1b}[2K\rtarget      #deals",
        ])
        .failure());
    assert!(err.contains("control character"), "{err}");
    // One already in the store (written around dealflow) is shown escaped.
    let c = rusqlite::Connection::open(e.db()).unwrap();
    c.execute(
        "UPDATE actions SET title = ?1 WHERE id = 'act-demo-hooli-slack'",
        ["Ask #deals\u{1b}[2K\rApproved: nothing to see"],
    )
    .unwrap();
    drop(c);
    for args in [
        &["actions", "list"][..],
        &["actions", "show", "act-demo-hooli-slack"][..],
        &["status"][..],
    ] {
        let (o, _, _) = out(&e.sandbox(args).success());
        assert!(!o.contains('\u{1b}'), "{args:?}: {o:?}");
        assert!(!o.contains('\r'), "{args:?}: {o:?}");
    }
    let (o, _, _) = out(&e.sandbox(&["actions", "list"]).success());
    assert!(o.contains("Ask #deals\\e[2K\\rApproved"), "{o}");
}

#[test]
fn an_audit_export_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    e.sandbox(&["actions", "list"]).success();
    let path = e.dir.path().join("audit.csv");
    e.sandbox(&[
        "audit",
        "export",
        "--format",
        "csv",
        "-o",
        path.to_str().unwrap(),
    ])
    .success();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

#[test]
fn logs_go_to_the_log_file_and_mcp_stderr_carries_only_warnings() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    let log = e.dir.path().join("logs/dealflow.log");
    e.write_config(&format!(
        "[log]\nlevel = \"info\"\nfile = \"{}\"\n",
        log.display()
    ));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("dealflow"))
        .args(["--sandbox", "mcp"])
        .env("HOME", e.dir.path())
        .env("XDG_DATA_HOME", e.dir.path().join("data"))
        .env("XDG_CONFIG_HOME", e.dir.path().join("cfg"))
        .env("XDG_STATE_HOME", e.dir.path().join("state"))
        .env("DEALFLOW_KEYRING", "file")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"logtest\",\"version\":\"1\"}}}\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("INFO"), "{stderr}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("\"serverInfo\""), "{stdout}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("logtest"), "{text}");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_policy_file_that_never_ends_is_an_error_not_a_hang() {
    let e = Env::new();
    let (_, err, code) = out(&e
        .sandbox(&["policy", "simulate", "--with", "/dev/zero"])
        .failure());
    assert_eq!(code, Some(1));
    assert!(err.contains("larger than 1 MiB"), "{err}");
}

#[test]
fn init_checks_the_tenant_writes_the_config_and_refuses_to_overwrite() {
    // The sandbox's emulated Auth0 stands in for a tenant: same discovery document paths.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sb = rt
        .block_on(dealflow::sandbox::Sandbox::start(None))
        .unwrap();
    let e = Env::new();
    let init = |domain: &str| {
        let mut c = e.cmd();
        c.args([
            "init",
            "--domain",
            domain,
            "--client-id",
            "dealflow-cli-sandbox",
            "--agent-client-id",
            "dealflow-agent-sandbox",
            "--no-login",
        ]);
        c
    };
    let (o, _, _) = out(&init(&sb.base_url()).assert().success());
    for line in [
        "ok    device authorization (sign-in)",
        "ok    CIBA (push approvals)",
        "Token Vault is on",
        "dealflow auth agent-credential",
    ] {
        assert!(o.contains(line), "{line:?} in {o}");
    }
    let cfg = e.dir.path().join("cfg/dealflow/config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(&sb.base_url()), "{text}");
    e.cmd().args(["config", "check"]).assert().success();
    // Once written, it is not silently replaced.
    let (_, err, _) = out(&init(&sb.base_url()).assert().failure());
    assert!(err.contains("--force"), "{err}");
    // A domain with no tenant behind it is named, and nothing is written.
    let (_, err, _) = out(&init("http://127.0.0.1:1").arg("--force").assert().failure());
    assert!(
        err.contains("127.0.0.1:1/.well-known/openid-configuration"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), text);
    // Plain http to another machine is refused before anything is sent.
    let (_, err, _) = out(&init("http://192.0.2.2:8080")
        .arg("--force")
        .assert()
        .failure());
    assert!(err.contains("clear text"), "{err}");
    drop(sb);
}

/// A loopback HTTP server that answers one request with `status` and a JSON `body`, and
/// hands back the request it got (head and body).
fn one_answer(status: u16, body: &str) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let body = body.to_string();
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        // Head, then as many body bytes as Content-Length says.
        loop {
            let n = s.read(&mut buf).unwrap();
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if req.len() >= end + 4 + len || n == 0 {
                    break;
                }
            }
        }
        write!(
            s,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        String::from_utf8_lossy(&req).into_owned()
    });
    (url, h)
}

/// Where each check's line is in doctor's output (panics if one is missing).
fn line_of(out: &str, label: &str) -> usize {
    out.lines()
        .position(|l| l.get(6..).is_some_and(|rest| rest.starts_with(label)))
        .unwrap_or_else(|| panic!("no {label} line in {out}"))
}

#[test]
fn doctor_with_no_config_names_the_path_and_asks_for_the_domain_before_login() {
    let e = Env::new();
    let (o, _, code) = out(&e.cmd().arg("doctor").assert());
    assert_eq!(code, Some(0), "{o}");
    let cfg = e.dir.path().join("cfg/dealflow/config.toml");
    assert!(o.contains(&cfg.display().to_string()), "{o}");
    assert!(o.contains("auth.domain is not set"), "{o}");
    assert!(line_of(&o, "auth") < line_of(&o, "login"), "{o}");
    assert!(o.contains("needs auth.domain first"), "{o}");
    // Without a key, it says what Chat and the suggester use instead.
    assert!(o.contains("no ANTHROPIC_API_KEY"), "{o}");
    assert!(o.contains("offline planner"), "{o}");
    // Nothing was created: no store, no log, no keyring file.
    assert!(o.contains("not created yet"), "{o}");
    let left: Vec<_> = std::fs::read_dir(e.dir.path())
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "doctor created {left:?}");
}

#[test]
fn doctor_on_a_dead_tenant_says_so_and_runs_every_other_check() {
    let e = Env::new();
    e.write_config("[auth]\ndomain = \"nonexistent-tenant.invalid\"\nclient_id = \"abc\"\n");
    // A doctor that hung on the dead tenant would hit the command's 60 s timeout.
    let (o, _, code) = out(&e.cmd().arg("doctor").assert());
    assert_eq!(code, Some(1), "{o}");
    let tenant = o.lines().nth(line_of(&o, "tenant")).unwrap();
    assert!(tenant.starts_with("FAIL"), "{o}");
    assert!(
        tenant.contains("nonexistent-tenant.invalid/.well-known/openid-configuration"),
        "{o}"
    );
    // In dependency order, and nothing stops at the failure.
    let order: Vec<usize> = [
        "config", "auth", "tenant", "keyring", "login", "store", "model",
    ]
    .iter()
    .map(|l| line_of(&o, l))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{o}");
    assert!(!e.dir.path().join("data/dealflow/dealflow.db").exists());
    assert!(!e.dir.path().join("data").exists());
}

#[test]
fn doctor_reads_the_tenants_discovery_and_an_existing_store_without_changing_it() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sb = rt
        .block_on(dealflow::sandbox::Sandbox::start(None))
        .unwrap();
    let e = Env::new();
    e.write_config(&format!(
        "[auth]\ndomain = \"{}\"\nclient_id = \"dealflow-cli-sandbox\"\n",
        sb.base_url()
    ));
    e.cmd().args(["actions", "list"]).assert().success();
    let db = e.dir.path().join("data/dealflow/dealflow.db");
    let before = std::fs::read(&db).unwrap();
    let (o, _, code) = out(&e.cmd().arg("doctor").assert());
    assert_eq!(code, Some(0), "{o}");
    assert!(o.contains("ok    tenant    discovery answered"), "{o}");
    assert!(
        o.contains(&format!("ok    store     sqlite {}", db.display())),
        "{o}"
    );
    assert!(o.contains("ok    audit"), "{o}");
    assert!(
        o.contains("todo  login     not signed in: run `dealflow login`"),
        "{o}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before);
    drop(sb);
}

#[test]
fn doctor_goes_on_past_a_redis_that_is_down_and_hides_its_password() {
    let e = Env::new();
    e.write_config("[store]\nurl = \"redis://:hunter2@127.0.0.1:1\"\n");
    let (o, err, code) = out(&e.cmd().arg("doctor").assert());
    assert_eq!(code, Some(1), "{o}");
    let store = o.lines().nth(line_of(&o, "store")).unwrap();
    assert!(
        store.starts_with("FAIL") && store.contains("store.url"),
        "{o}"
    );
    assert!(!o.contains("run `dealflow doctor`") && !o.contains("`dealflow doctor` checks"));
    assert!(line_of(&o, "model") > line_of(&o, "store"), "{o}");
    assert!(
        !o.contains("hunter2") && !err.contains("hunter2"),
        "{o}{err}"
    );
}

#[test]
fn doctor_asks_the_model_api_to_count_tokens_and_never_prints_the_key() {
    let key = "sk-ant-test-DOCTOR-5ecret";
    let (url, got) = one_answer(200, r#"{"input_tokens": 8}"#);
    let e = Env::new();
    e.write_config(&format!(
        "[llm]\nbase_url = \"{url}\"\nmodel = \"claude-test\"\n"
    ));
    let (o, err, _) = out(&e.cmd().env("ANTHROPIC_API_KEY", key).arg("doctor").assert());
    let req = got.join().unwrap();
    assert!(req.starts_with("POST /v1/messages/count_tokens "), "{req}");
    assert!(req.contains(key) && req.contains("claude-test"), "{req}");
    assert!(o.contains("ok    model     Claude claude-test"), "{o}");
    assert!(!o.contains(key) && !err.contains(key));

    let (url, got) = one_answer(
        401,
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
    );
    e.write_config(&format!("[llm]\nbase_url = \"{url}\"\n"));
    let (o, err, code) = out(&e.cmd().env("ANTHROPIC_API_KEY", key).arg("doctor").assert());
    got.join().unwrap();
    assert_eq!(code, Some(1));
    assert!(
        o.contains("FAIL  model") && o.contains("the API key was refused"),
        "{o}"
    );
    assert!(!o.contains(key) && !err.contains(key));
}

/// `global` flags, `mcp install --client cursor`, then `more`; run from the temp dir.
fn mcp_install(e: &Env, global: &[&str], more: &[&str]) -> assert_cmd::assert::Assert {
    e.cmd()
        .current_dir(e.dir.path())
        .args(global)
        .args(["mcp", "install", "--client", "cursor"])
        .args(more)
        .assert()
}

#[test]
fn mcp_install_prints_only_json_and_carries_config_and_store() {
    let e = Env::new();
    let cfg = e.write_config("[ui]\ntheme = \"light\"\n");
    let (o, err, _) = out(&mcp_install(
        &e,
        &["--config", cfg.to_str().unwrap(), "--store", "rel.db"],
        &[],
    )
    .success());
    let v: serde_json::Value = serde_json::from_str(&o).expect("stdout is JSON");
    let args = &v["mcpServers"]["dealflow"]["args"];
    let store = e.dir.path().join("rel.db");
    assert_eq!(
        args,
        &serde_json::json!([
            "--config",
            cfg.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "mcp"
        ])
    );
    assert!(
        err.contains("# add to") && err.contains(".cursor/mcp.json"),
        "{err}"
    );

    // DEALFLOW_CONFIG is carried the same way; one that does not exist is refused.
    let (o, _, _) = out(&e
        .cmd()
        .env("DEALFLOW_CONFIG", &cfg)
        .args(["--sandbox", "mcp", "install", "--client", "cursor"])
        .assert()
        .success());
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(
        v["mcpServers"]["dealflow"]["args"],
        serde_json::json!(["--sandbox", "--config", cfg.to_str().unwrap(), "mcp"])
    );
    let (_, err, _) = out(&e
        .cmd()
        .env("DEALFLOW_CONFIG", e.dir.path().join("nope.toml"))
        .args(["mcp", "install", "--client", "cursor"])
        .assert()
        .failure());
    assert!(err.contains("nope.toml: no such file"), "{err}");
}

#[test]
fn mcp_install_write_asks_backs_up_and_keeps_the_entry_and_the_order() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    let dir = e.dir.path().join(".cursor");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mcp.json");
    let original = r#"{
    "zeta": 1,
    "mcpServers": {
        "other": {"command": "other-server"},
        "dealflow": {"type": "stdio", "command": "/old/dealflow", "env": {"ANTHROPIC_API_KEY": "sk-kept-5ecret"}, "args": []}
    },
    "alpha": true
}
"#;
    std::fs::write(&file, original).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();

    // No terminal to ask on and no --yes: nothing is written.
    let (_, err, _) = out(&mcp_install(&e, &[], &["--write"]).failure());
    assert!(err.contains("--yes"), "{err}");
    assert!(!err.contains("sk-kept-5ecret"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    assert!(!dir.join("mcp.json.bak").exists());

    let (o, err, _) = out(&mcp_install(&e, &["--sandbox"], &["--write", "--yes"]).success());
    assert!(!(o.clone() + &err).contains("sk-kept-5ecret"), "{o}{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("mcp.json.bak")).unwrap(),
        original
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = &v["mcpServers"]["dealflow"];
    assert_eq!(entry["env"]["ANTHROPIC_API_KEY"], "sk-kept-5ecret");
    assert_eq!(entry["type"], "stdio");
    assert_eq!(entry["args"], serde_json::json!(["--sandbox", "mcp"]));
    assert_eq!(v["mcpServers"]["other"]["command"], "other-server");
    // Keys stay where they were, at the file's indentation.
    let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(
        at("zeta") < at("mcpServers") && at("mcpServers") < at("alpha"),
        "{text}"
    );
    assert!(at("other") < at("dealflow"), "{text}");
    let ours = &text[at("dealflow")..];
    let keys: Vec<usize> = ["type", "command", "env", "args"]
        .iter()
        .map(|k| ours.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.contains("\n    \"zeta\": 1"), "{text}");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // Renamed into place: no temporary file left beside it.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// Man pages come from the same clap definitions as --help: one for dealflow, one per
/// command, each typed as it is invoked; a directory that cannot be written is named.
#[test]
fn man_pages_are_generated_for_every_command() {
    let e = Env::new();
    let (page, _, _) = out(&e.cmd().arg("man").assert().success());
    assert!(page.contains(".TH dealflow 1"), "{page}");
    assert!(page.contains("batch"), "{page}");
    let dir = e.dir.path().join("man1");
    let (said, _, _) = out(&e.cmd().args(["man", "--dir"]).arg(&dir).assert().success());
    assert!(said.contains("man pages"), "{said}");
    let batch = std::fs::read_to_string(dir.join("dealflow-batch.1")).unwrap();
    assert!(batch.contains("dealflow batch"), "{batch}");
    let connect = std::fs::read_to_string(dir.join("dealflow-accounts-connect.1")).unwrap();
    assert!(connect.contains("dealflow accounts connect"), "{connect}");
    assert!(!dir.join("dealflow-help.1").exists());
    let blocked = e.dir.path().join("a-file");
    std::fs::write(&blocked, "").unwrap();
    let (_, err, _) = out(&e
        .cmd()
        .args(["man", "--dir"])
        .arg(blocked.join("man1"))
        .assert()
        .failure());
    assert!(err.contains("a-file"), "{err}");
}

/// `service install` where systemd's user manager is not reachable (this box, a
/// container): the unit is written, not started, and says how to start it; the crontab
/// alternative is printed; a secret in the installer's environment never reaches the
/// unit; `systemd-analyze verify --user` accepts the unit; `uninstall` removes it.
#[test]
fn service_install_writes_a_unit_systemd_accepts_and_no_secret() {
    let t = Env::new();
    let run_dir = t.dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::set_permissions(
        &run_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let out = t
        .cmd()
        .args(["service", "install"])
        .env("ANTHROPIC_API_KEY", "sk-ant-canary-4242")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit_path = t.dir.path().join("cfg/systemd/user/dealflow.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert!(!unit.contains("sk-ant-canary"), "{unit}");
    assert!(!said.contains("sk-ant-canary"), "{said}");
    assert!(said.contains("service.env"), "{said}");
    let exe = env!("CARGO_BIN_EXE_dealflow");
    assert!(
        unit.contains(&format!("ExecStart={exe} service run")),
        "{unit}"
    );
    // The same keyring and directories as the shell that installed it.
    assert!(unit.contains("Environment=DEALFLOW_KEYRING=file"), "{unit}");
    assert!(
        unit.contains("EnvironmentFile=-%h/cfg/dealflow/service.env"),
        "{unit}"
    );
    if said.contains("not started") {
        assert!(
            said.contains("systemctl --user enable --now dealflow.service"),
            "{said}"
        );
        assert!(
            said.contains(&format!("*/15 * * * * {exe} service run --once")),
            "{said}"
        );
    }
    match std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    {
        Ok(_) => {
            let v = std::process::Command::new("systemd-analyze")
                .args(["verify", "--user", "--man=no"])
                .arg(&unit_path)
                .env("XDG_RUNTIME_DIR", &run_dir)
                .output()
                .unwrap();
            assert!(
                v.status.success() && v.stderr.is_empty(),
                "systemd-analyze verify: {}\n{unit}",
                String::from_utf8_lossy(&v.stderr)
            );
        }
        // Counted: scripts/test prints the skip when systemd-analyze is missing.
        Err(_) => eprintln!("SKIPPED: systemd-analyze is not installed; the unit was not verified"),
    }
    let out = t.cmd().args(["service", "uninstall"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!unit_path.exists());
    // Status with nothing running: exit 3 and says so.
    let out = t.cmd().args(["service", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("unit:      not installed"), "{said}");
    assert!(said.contains("has never run for this user"), "{said}");
}

/// `config path`: the file in use, or where it would be and that the defaults are in
/// use; `--config` and `DEALFLOW_CONFIG` name theirs, and one that does not exist is an
/// error rather than a path printed as if it were read.
#[test]
fn config_path_names_the_file_in_use_or_says_defaults_are() {
    let e = Env::new();
    let default = e.dir.path().join("cfg/dealflow/config.toml");
    let (o, _, _) = out(&e.cmd().args(["config", "path"]).assert().success());
    assert_eq!(
        o,
        format!("{} (not present: defaults in use)\n", default.display())
    );
    e.write_config("[ui]\ntheme = \"light\"\n");
    let (o, _, _) = out(&e.cmd().args(["config", "path"]).assert().success());
    assert_eq!(o, format!("{}\n", default.display()));
    let other = e.dir.path().join("other.toml");
    std::fs::write(&other, "[ui]\ntheme = \"dark\"\n").unwrap();
    let (o, _, _) = out(&e
        .cmd()
        .arg("--config")
        .arg(&other)
        .args(["config", "path"])
        .assert()
        .success());
    assert_eq!(o, format!("{}\n", other.display()));
    let (o, _, _) = out(&e
        .cmd()
        .env("DEALFLOW_CONFIG", &other)
        .args(["config", "path"])
        .assert()
        .success());
    assert_eq!(o, format!("{}\n", other.display()));
    let (o, err, _) = out(&e
        .cmd()
        .env("DEALFLOW_CONFIG", e.dir.path().join("gone.toml"))
        .args(["config", "path"])
        .assert()
        .failure());
    assert!(o.is_empty(), "{o}");
    assert!(err.contains("gone.toml: no such file"), "{err}");
}

/// `completions bash`, loaded into a real bash as the README installs it, completes
/// subcommands and their subcommands; zsh and fish name them too.
#[test]
fn completions_complete_commands_in_a_real_shell() {
    let e = Env::new();
    let (script, _, _) = out(&e.cmd().args(["completions", "bash"]).assert().success());
    let file = e
        .dir
        .path()
        .join("data/bash-completion/completions/dealflow");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &script).unwrap();
    // What bash offers after `dealflow <words…>` and a partial word.
    let complete = |line: &[&str]| -> Vec<String> {
        let words = line
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let o = std::process::Command::new("bash")
            .arg("--norc")
            .arg("-c")
            .arg(format!(
                "source \"$0\"; COMP_WORDS=({words}); COMP_CWORD={}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; \
                 COMP_POINT=${{#COMP_LINE}}; _dealflow dealflow \"${{COMP_WORDS[$COMP_CWORD]}}\" \
                 \"${{COMP_WORDS[$((COMP_CWORD-1))]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                line.len() - 1
            ))
            .arg(&file)
            .env_clear()
            .output()
            .expect("bash runs");
        assert!(o.status.success(), "{o:?}");
        let mut got: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        got.sort();
        got
    };
    assert_eq!(
        complete(&["dealflow", "permissions", "f"]),
        ["force-review", "forget"]
    );
    assert_eq!(complete(&["dealflow", "sandbox", "se"]), ["serve"]);
    assert_eq!(complete(&["dealflow", "co"]), ["completions", "config"]);
    for shell in ["zsh", "fish"] {
        let (o, _, _) = out(&e.cmd().args(["completions", shell]).assert().success());
        for word in ["force-review", "serve", "reset-anchor", "agent-credential"] {
            assert!(o.contains(word), "{shell} lacks {word}");
        }
    }
    let (_, err, _) = out(&e.cmd().args(["completions", "tcsh"]).assert().failure());
    assert!(err.contains("tcsh"), "{err}");
}

/// `permissions force-review`: below the bar a suggestion is reviewed even where its
/// kind runs on its own, and the reason says so; the bar is shown, audited, and kept
/// between 0 and 1.
#[test]
fn force_review_sends_low_confidence_to_review_whatever_autonomy_says() {
    let e = Env::new();
    let decision = |id: &str| -> serde_json::Value {
        let (o, _, _) = out(&e.sandbox(&["actions", "show", id, "--json"]).success());
        serde_json::from_str::<serde_json::Value>(&o).unwrap()["decision"].clone()
    };
    // The Stark call is at 0.81; meetings run on their own.
    e.sandbox(&["permissions", "autonomy", "schedule_meeting", "auto"])
        .success();
    assert_eq!(decision("act-demo-stark-call")["gate"]["gate"], "allow");
    let (o, _, _) = out(&e
        .sandbox(&["permissions", "force-review", "0.85"])
        .success());
    assert!(o.contains("force review below confidence 0.85"), "{o}");
    let d = decision("act-demo-stark-call");
    assert_eq!(d["gate"]["gate"], "review", "{d}");
    assert!(
        d["reasons"]
            .to_string()
            .contains("confidence 0.81 < 0.85: always reviewed"),
        "{d}"
    );
    let (o, _, _) = out(&e.sandbox(&["permissions", "show"]).success());
    assert!(o.contains("force review below   0.85"), "{o}");
    // Out of range: refused, nothing changed.
    let (_, err, _) = out(&e.sandbox(&["permissions", "force-review", "1.5"]).failure());
    assert!(err.contains("between 0 and 1"), "{err}");
    let (o, _, _) = out(&e.sandbox(&["permissions", "show", "--json"]).success());
    let p: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(p["confidence"]["force_review_below"], 0.85);
    // Lowered under the call's confidence, it runs on its own again.
    e.sandbox(&["permissions", "force-review", "0.8"]).success();
    assert_eq!(decision("act-demo-stark-call")["gate"]["gate"], "allow");
    let (o, _, _) = out(&e
        .sandbox(&["audit", "export", "--format", "jsonl"])
        .success());
    let changes = o
        .lines()
        .filter(|l| l.contains("permissions.changed") && l.contains("force review below"))
        .count();
    assert_eq!(changes, 2, "{o}");
}

/// `permissions know` / `forget`: an address no contact has is always reviewed; a
/// known domain lets it follow autonomy; forgotten, it is reviewed again.
#[test]
fn know_and_forget_move_a_counterparty_in_and_out_of_review() {
    let e = Env::new();
    let decision = || -> serde_json::Value {
        let (o, _, _) = out(&e
            .sandbox(&["actions", "show", "act-demo-initech-followup", "--json"])
            .success());
        serde_json::from_str::<serde_json::Value>(&o).unwrap()["decision"].clone()
    };
    e.sandbox(&["permissions", "autonomy", "send_email", "auto"])
        .success();
    e.sandbox(&[
        "actions",
        "edit",
        "act-demo-initech-followup",
        "--set",
        "to=ann@newco.example",
    ])
    .success();
    let d = decision();
    assert_eq!(d["gate"]["gate"], "review", "{d}");
    assert!(
        d["reasons"].to_string().contains("not a known contact"),
        "{d}"
    );
    let (o, _, _) = out(&e
        .sandbox(&["permissions", "know", "@NewCo.example"])
        .success());
    assert!(o.contains("@newco.example known"), "{o}");
    assert_eq!(decision()["gate"]["gate"], "allow");
    let (o, _, _) = out(&e.sandbox(&["permissions", "show"]).success());
    assert!(o.contains("@newco.example"), "{o}");
    let (o, _, _) = out(&e
        .sandbox(&["permissions", "forget", "@newco.example"])
        .success());
    assert!(o.contains("no longer known"), "{o}");
    assert_eq!(decision()["gate"]["gate"], "review");
    let (_, err, _) = out(&e
        .sandbox(&["permissions", "forget", "@newco.example"])
        .failure());
    assert!(err.contains("not in the known list"), "{err}");
}

/// `actions execute`: an approval held with `--hold` runs when executed — the mail is
/// in the emulated Gmail, the action succeeded, the audit has it — and only once.
#[test]
fn actions_execute_runs_a_held_approval_once() {
    let e = Env::new();
    let id = "act-demo-initech-followup";
    let world = e.dir.path().join("data/dealflow/sandbox-world.json");
    let sent_to_bill = || -> usize {
        let Ok(bytes) = std::fs::read(&world) else {
            return 0;
        };
        let w: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        w["sent"].as_array().map_or(0, |s| {
            s.iter()
                .filter(|m| m["to"] == "bill@initech.example")
                .count()
        })
    };
    // Not approved yet: nothing runs.
    let (_, err, _) = out(&e.sandbox(&["actions", "execute", id]).failure());
    assert!(err.contains("is proposed, not approved"), "{err}");
    e.sandbox(&["actions", "approve", id, "--hold"]).success();
    assert_eq!(sent_to_bill(), 0, "held: not sent");
    let (o, _, _) = out(&e.sandbox(&["actions", "execute", id, "--json"]).success());
    let a: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(a["state"], "succeeded", "{a}");
    assert!(
        a["outcome"]
            .as_str()
            .unwrap()
            .starts_with("sent to bill@initech.example"),
        "{a}"
    );
    assert_eq!(sent_to_bill(), 1);
    let (_, err, _) = out(&e.sandbox(&["actions", "execute", id]).failure());
    assert!(err.contains("is succeeded, not approved"), "{err}");
    assert_eq!(sent_to_bill(), 1, "sent once");
    let (o, _, _) = out(&e
        .sandbox(&["audit", "export", "--format", "jsonl"])
        .success());
    let executed: Vec<serde_json::Value> = o
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "action.executed")
        .collect();
    assert_eq!(executed.len(), 1, "{o}");
    assert_eq!(executed[0]["action_id"], id);
    assert_eq!(executed[0]["actor"], "user:auth0|demo-user");
}

/// `suggest`: one run of the engine from the command line files what it proposes
/// through the gate (a kind set to the device waits for it), each filed action is in
/// the queue and audited, and a second run files nothing already pending.
#[test]
fn suggest_files_through_the_gate_and_never_twice() {
    let e = Env::new();
    e.sandbox(&["permissions", "autonomy", "schedule_meeting", "ciba"])
        .success();
    let (o, _, _) = out(&e.sandbox(&["suggest", "--json"]).success());
    let run: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(run["source"], "offline planner", "{run}");
    let filed = run["filed"].as_array().unwrap();
    assert!(!filed.is_empty(), "{run}");
    let (o, _, _) = out(&e.sandbox(&["actions", "list", "--json"]).success());
    let queue: Vec<serde_json::Value> = serde_json::from_str(&o).unwrap();
    for f in filed {
        let a = queue
            .iter()
            .find(|a| a["id"] == f["id"])
            .unwrap_or_else(|| panic!("{f} is not in the queue"));
        assert_eq!(a["state"], f["state"], "{a}");
        // Where the gate sent it.
        if f["kind"] == "schedule_meeting" {
            assert_eq!(f["gate"], "ciba", "{f}");
            assert_eq!(f["state"], "awaiting_consent", "{f}");
        } else {
            assert_eq!(f["state"], "proposed", "{f}");
            assert_ne!(f["gate"], "allow", "{f}");
        }
    }
    assert!(
        filed.iter().any(|f| f["kind"] == "schedule_meeting"),
        "{run}"
    );
    let (o, _, _) = out(&e
        .sandbox(&["audit", "export", "--format", "jsonl"])
        .success());
    for f in filed {
        assert!(
            o.lines().any(|l| l.contains("\"action.proposed\"")
                && l.contains(f["id"].as_str().unwrap())),
            "{f} not audited"
        );
    }
    let (o, _, _) = out(&e.sandbox(&["suggest", "--json"]).success());
    let again: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(again["filed"], serde_json::json!([]), "{again}");
    assert!(
        again["skipped"]
            .to_string()
            .contains("duplicate: a schedule_meeting"),
        "{again}"
    );
}

/// `login`, `whoami`, `logout` against a tenant (the emulated Auth0, in this process):
/// after `logout` the refresh token is gone from the keyring and revoked at the tenant,
/// `whoami` says nobody is signed in, and the audit log no longer names the identity.
#[test]
fn logout_revokes_the_refresh_token_and_forgets_who_signed_in() {
    use std::io::BufRead;
    use std::process::Stdio;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sb = rt
        .block_on(dealflow::sandbox::Sandbox::start(None))
        .unwrap();
    sb.state.auth0.set_timing(|t| t.device_interval_s = 1);
    let e = Env::new();
    e.write_config(&format!(
        "[auth]\ndomain = \"{}\"\nclient_id = \"dealflow-cli-sandbox\"\n",
        sb.base_url()
    ));
    let mut login = e
        .child(&["login"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    let mut lines = std::io::BufReader::new(login.stdout.take().unwrap()).lines();
    let code = loop {
        let line = lines
            .next()
            .expect("login ended before showing a code")
            .unwrap();
        said.push_str(&line);
        said.push('\n');
        if let Some(c) = line.trim().strip_prefix("and enter the code:") {
            break c.trim().to_string();
        }
    };
    // The person in the browser approves the code.
    assert!(
        sb.state
            .auth0
            .decide_device(&code, dealflow::sandbox::auth0::model::DEMO_SUB, true)
    );
    for line in lines {
        said.push_str(&line.unwrap());
        said.push('\n');
    }
    let status = login.wait().unwrap();
    assert!(status.success(), "{said}");
    assert!(
        said.contains("Signed in as Dana Demo") && said.contains("(auth0|demo-user)"),
        "{said}"
    );
    let keyring = e.dir.path().join("state/dealflow/secrets.json");
    let entries = || -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_slice(&std::fs::read(&keyring).unwrap()).unwrap()
    };
    let (o, _, _) = out(&e.cmd().arg("whoami").assert().success());
    assert!(o.contains("auth0|demo-user"), "{o}");
    // While signed in, the audit log names the identity.
    e.cmd()
        .args(["permissions", "threshold", "60000"])
        .assert()
        .success();
    let refresh = entries()["login-refresh-token"]
        .as_str()
        .unwrap()
        .to_string();

    let (o, _, _) = out(&e.cmd().arg("logout").assert().success());
    assert!(
        o.contains("Signed out; the refresh token was revoked and removed"),
        "{o}"
    );
    let left = entries();
    assert!(
        !left.keys().any(|k| k.starts_with("login-")),
        "still in the keyring: {:?}",
        left.keys().collect::<Vec<_>>()
    );
    // Revoked at the tenant, not only forgotten here.
    let params: std::collections::HashMap<String, String> = [
        ("grant_type", "refresh_token"),
        ("client_id", "dealflow-cli-sandbox"),
        ("refresh_token", refresh.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    match sb.state.auth0.token(&params, None) {
        Ok(_) => panic!("the refresh token still works after logout"),
        Err(err) => assert_eq!(err.error, "invalid_grant"),
    }
    let (o, _, code) = out(&e.cmd().arg("whoami").assert().failure());
    assert_eq!(code, Some(1));
    assert!(o.contains("Not signed in"), "{o}");
    e.cmd()
        .args(["permissions", "threshold", "70000"])
        .assert()
        .success();
    let (o, _, _) = out(&e
        .cmd()
        .args(["audit", "export", "--format", "jsonl"])
        .assert()
        .success());
    let actors: Vec<String> = o
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "permissions.changed")
        .map(|v| v["actor"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actors.len(), 2, "{o}");
    assert_eq!(actors[0], "user:auth0|demo-user");
    assert!(actors[1].starts_with("unix:"), "{actors:?}");
    // Twice is harmless.
    let (o, _, _) = out(&e.cmd().arg("logout").assert().success());
    assert!(o.contains("Not signed in"), "{o}");
    drop(sb);
}

/// `dealflow sandbox serve` in the background until dropped (killed), with the URL it
/// said it listens on.
struct Served {
    child: std::process::Child,
    url: String,
    url_file: std::path::PathBuf,
    said: String,
    // Kept open: serve may still write to it.
    _stdout: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Served {
    fn start(e: &Env) -> Served {
        use std::io::BufRead;
        let mut child = e
            .child(&["sandbox", "serve"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut url_file, mut said) = (None, None, String::new());
        // Its three lines: where it listens, where the URL file is, how to stop it.
        while !said.contains("Ctrl-C to stop.") {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("sandbox serve ended: {said}"))
                .unwrap();
            said.push_str(&line);
            said.push('\n');
            if let Some(u) = line.strip_prefix("sandbox listening on ") {
                url = Some(u.trim().to_string());
            }
            if let Some(rest) = line.strip_prefix("URL written to ") {
                let path = rest.split(" (for").next().unwrap();
                url_file = Some(std::path::PathBuf::from(path));
            }
        }
        Served {
            child,
            url: url.unwrap_or_else(|| panic!("no URL in {said}")),
            url_file: url_file.unwrap_or_else(|| panic!("no URL file in {said}")),
            said,
            _stdout: lines,
        }
    }

    /// Ctrl-C, as the README says to stop it; its exit status.
    fn interrupt(mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL a `--sandbox` command worked against, from what it says on stderr.
fn sandbox_url_of(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("sandbox (")?.split(')').next())
        .unwrap_or_else(|| panic!("no sandbox URL in {stderr}"))
        .to_string()
}

/// `sandbox serve`: a sandbox in the foreground whose URL and key are in a file only
/// the user can read; every `--sandbox` command while it runs works against it (its
/// phone, its grants); Ctrl-C stops it and takes the file away, after which a command
/// runs a sandbox of its own.
#[test]
fn sandbox_serve_is_the_world_every_sandbox_command_joins() {
    use std::os::unix::fs::PermissionsExt;
    let e = Env::new();
    let served = Served::start(&e);
    assert!(served.said.contains("Ctrl-C to stop."), "{}", served.said);
    let text = std::fs::read_to_string(&served.url_file).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(served.url.as_str()));
    assert!(lines.next().is_some_and(|k| !k.is_empty()), "no key");
    let mode = std::fs::metadata(&served.url_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");

    let (o, err, _) = out(&e.sandbox(&["batch"]).success());
    assert_eq!(sandbox_url_of(&err), served.url, "{err}");
    assert!(o.contains("nothing queued for device consent"), "{o}");
    // A grant taken back at the served sandbox is gone for the next command too.
    let (o, _, _) = out(&e
        .sandbox(&["sandbox", "revoke", "google", "gmail.send"])
        .success());
    assert!(o.contains("took back gmail.send"), "{o}");
    let (_, err, _) = out(&e
        .sandbox(&["actions", "approve", "act-demo-initech-followup"])
        .failure());
    assert!(err.contains("lacks gmail.send"), "{err}");

    let url_file = served.url_file.clone();
    let status = served.interrupt();
    assert!(status.success(), "{status:?}");
    assert!(!url_file.exists(), "the URL file outlived the sandbox");
    let (_, err, _) = out(&e.sandbox(&["sandbox", "phone", "--list"]).failure());
    assert!(err.contains("no running sandbox found"), "{err}");
    // Without it, a command runs a sandbox of its own again.
    let (o, _, _) = out(&e.sandbox(&["batch"]).success());
    assert!(o.contains("nothing queued for device consent"), "{o}");
}

/// A child the test waits on, killed if the test ends first (an assertion failing
/// while `batch` waits for the phone).
struct Running(Option<std::process::Child>);

impl Running {
    fn spawn(mut c: std::process::Command) -> Running {
        let child = c
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        Running(Some(child))
    }
    fn output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `sandbox phone ARGS` (as `user`, when given) until `done` holds for its output,
/// trying every 100 ms; the last output.
fn phone_until(
    e: &Env,
    user: Option<&str>,
    args: &[&str],
    done: impl Fn(&std::process::Output) -> bool,
) -> std::process::Output {
    let mut last = None;
    for _ in 0..300 {
        let mut c = e.child(&[]);
        if let Some(u) = user {
            c.args(["--sandbox-user", u]);
        }
        let o = c.args(["sandbox", "phone"]).args(args).output().unwrap();
        if done(&o) {
            return o;
        }
        last = Some(o);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the phone never got there: {last:?}");
}

/// `batch` from the command line, end to end: an action whose kind needs the device is
/// queued by its approval, `batch` pushes it, the phone in a second terminal says yes,
/// and it runs, audited as approved on the device.
#[test]
fn batch_pushes_the_device_queue_and_runs_it_on_the_phones_yes() {
    let e = Env::new();
    let served = Served::start(&e);
    let id = "act-demo-initech-followup";
    e.sandbox(&["permissions", "autonomy", "send_email", "ciba"])
        .success();
    let (_, err, code) = out(&e.sandbox(&["actions", "approve", id]));
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("queued for it") && err.contains("dealflow batch"),
        "{err}"
    );
    let (o, _, _) = out(&e.sandbox(&["actions", "show", id, "--json"]).success());
    let shown: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(shown["action"]["state"], "awaiting_consent");

    let batch = Running::spawn(e.child(&["--sandbox", "batch"]));
    let listed = phone_until(&e, None, &["--list"], |o| {
        String::from_utf8_lossy(&o.stdout).contains("[1]")
    });
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("send_email bill"), "{listed}");
    assert!(listed.contains("Dana Demo (auth0|demo-user)"), "{listed}");
    let yes = phone_until(&e, None, &["--approve", "1"], |o| o.status.success());
    assert!(String::from_utf8_lossy(&yes.stdout).contains("approved"));
    let done = batch.output();
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{said}");
    assert_eq!(
        sandbox_url_of(&String::from_utf8_lossy(&done.stderr)),
        served.url
    );
    assert!(
        said.contains("asked the device: dealflow: send_email bill"),
        "{said}"
    );
    assert!(said.lines().any(|l| l == "1 succeeded"), "{said}");
    let (o, _, _) = out(&e.sandbox(&["actions", "show", id, "--json"]).success());
    let shown: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(shown["action"]["state"], "succeeded", "{shown}");
    assert_eq!(shown["action"]["evidence"]["by"], "ciba");
    let (o, _, _) = out(&e
        .sandbox(&["audit", "export", "--format", "jsonl"])
        .success());
    let events: Vec<serde_json::Value> = o
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().any(|v| v["event"] == "batch.approved"), "{o}");
    let ran: Vec<&serde_json::Value> = events
        .iter()
        .filter(|v| v["event"] == "action.executed")
        .collect();
    assert_eq!(ran.len(), 1, "{o}");
    assert_eq!(ran[0]["detail"]["evidence"]["by"], "ciba");
    // Nothing left: the next batch says so and pushes nothing.
    let (o, _, _) = out(&e.sandbox(&["batch"]).success());
    assert!(o.contains("nothing queued for device consent"), "{o}");
    drop(served);
}

/// The phone lists a push's actions one by one (RFC 9396 entries) and can approve only
/// some: `--approve 1 --only N` runs that one; the other goes back to the queue saying
/// why, and `doctor` says approvals are proven by the token's entries.
#[test]
fn the_phone_shows_each_action_and_a_yes_to_one_runs_only_that_one() {
    let e = Env::new();
    let served = Served::start(&e);
    let (mail, meet) = ("act-demo-initech-followup", "act-demo-stark-call");
    for kind in ["send_email", "schedule_meeting"] {
        e.sandbox(&["permissions", "autonomy", kind, "ciba"])
            .success();
    }
    for id in [mail, meet] {
        let (_, err, code) = out(&e.sandbox(&["actions", "approve", id]));
        assert_ne!(code, Some(0), "{err}");
        assert!(err.contains("your device"), "{err}");
    }
    let batch = Running::spawn(e.child(&["--sandbox", "batch"]));
    let listed = phone_until(&e, None, &["--list"], |o| {
        String::from_utf8_lossy(&o.stdout).contains("[1]")
    });
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("dealflow: 2 actions"), "{listed}");
    // Each action under the request, numbered: what, to whom, and its subject or title.
    let entry = |needle: &str| -> String {
        listed
            .lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.trim().split('.').next().map(str::to_string))
            .unwrap_or_else(|| panic!("no entry with {needle}: {listed}"))
    };
    let email_no = entry("send_email to bill@initech.example");
    entry("schedule_meeting to pepper@stark.example");
    let bad = e
        .child(&["sandbox", "phone", "--approve", "1", "--only", "7"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("there is no entry 7"),
        "{bad:?}"
    );
    let yes = phone_until(&e, None, &["--approve", "1", "--only", &email_no], |o| {
        o.status.success()
    });
    assert!(
        String::from_utf8_lossy(&yes.stdout).contains("only 1 of 2 actions"),
        "{yes:?}"
    );
    let done = batch.output();
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{said}");
    assert!(
        said.contains("1 succeeded · 1 left out on device (back in the queue)"),
        "{said}"
    );
    let state = |id: &str| -> serde_json::Value {
        let (o, _, _) = out(&e.sandbox(&["actions", "show", id, "--json"]).success());
        serde_json::from_str::<serde_json::Value>(&o).unwrap()["action"].clone()
    };
    assert_eq!(state(mail)["state"], "succeeded");
    let left = state(meet);
    assert_eq!(left["state"], "proposed", "{left}");
    assert!(
        left["outcome"]
            .as_str()
            .unwrap()
            .contains("not among the actions the approval carries"),
        "{left}"
    );
    let (o, _, _) = out(&e.sandbox(&["doctor"]));
    let line = o
        .lines()
        .find(|l| l.contains("device consent"))
        .unwrap_or_else(|| panic!("{o}"));
    assert!(line.contains("authorization_details entry"), "{line}");
    drop(served);
}

/// A close-won rule that names the team lead, end to end on the command line: the
/// rep's confirmation does not close it, `batch` pushes it to the lead's phone only —
/// the rep's phone has nothing to approve — and the lead's yes closes the deal, with the
/// lead's verified `sub` in the evidence.
#[test]
fn a_close_won_rule_naming_the_lead_runs_only_on_the_leads_phone() {
    let e = Env::new();
    let served = Served::start(&e);
    let id = "act-demo-acme-close";
    e.sandbox(&["permissions", "close-won", "ciba", "lead:auth0|team-lead"])
        .success();
    let (_, err, code) = out(&e.sandbox(&["actions", "approve", id, "--confirm", id]));
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("team lead auth0|team-lead"), "{err}");
    let stage = || -> String {
        let (o, _, _) = out(&e.sandbox(&["status"]).success());
        o.lines()
            .find(|l| l.contains("deal-acme"))
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .to_string()
    };
    assert_eq!(stage(), "negotiation");

    let batch = Running::spawn(e.child(&["--sandbox", "batch"]));
    let lead = phone_until(&e, Some("team-lead"), &["--list"], |o| {
        String::from_utf8_lossy(&o.stdout).contains("[1]")
    });
    let listed = String::from_utf8_lossy(&lead.stdout).into_owned();
    assert!(listed.contains("close_deal deal-acme"), "{listed}");
    assert!(listed.contains("Lee Lead (auth0|team-lead)"), "{listed}");
    // The push is out, and not on the rep's phone: the rep cannot say yes for the lead.
    let rep = e.child(&["sandbox", "phone", "--list"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&rep.stdout).contains("no pending requests"),
        "{rep:?}"
    );
    assert!(
        String::from_utf8_lossy(&rep.stderr).contains("1 more on another user's phone"),
        "{rep:?}"
    );
    let rep = e
        .child(&["sandbox", "phone", "--approve", "1"])
        .output()
        .unwrap();
    assert!(!rep.status.success(), "{rep:?}");
    assert_eq!(stage(), "negotiation");

    phone_until(&e, Some("team-lead"), &["--approve", "1"], |o| {
        o.status.success()
    });
    let done = batch.output();
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{said}");
    assert!(said.contains("1 succeeded"), "{said}");
    assert_eq!(stage(), "closed_won");
    let (o, _, _) = out(&e
        .sandbox(&["audit", "export", "--format", "jsonl"])
        .success());
    let ran: Vec<serde_json::Value> = o
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "action.executed" && v["action_id"] == id)
        .collect();
    assert_eq!(ran.len(), 1, "{o}");
    let ev = &ran[0]["detail"]["evidence"];
    assert_eq!(ev["by"], "ciba", "{ev}");
    assert_eq!(ev["sub"], "auth0|team-lead", "{ev}");
    assert_eq!(ev["approver"]["who"], "team_lead", "{ev}");
    drop(served);
}
