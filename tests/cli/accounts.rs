//! `dealflow accounts` on the real binary against the sandbox: list, an audited
//! app-level disconnect that blocks execution, and the incremental connect flow — a
//! scope revoked at the provider (`dealflow sandbox revoke`) is asked for again, and
//! only it — completed by a "browser" (this test) following the consent page to the
//! CLI's loopback listener. Every command joins one running sandbox (`sandbox serve`),
//! as a rep's second terminal joins the TUI's.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn cmd(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dealflow"));
    c.env_clear()
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("cfg"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("DEALFLOW_KEYRING", "file")
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("USER", "rep")
        .arg("--sandbox");
    c
}

/// The real binary, run to completion.
fn run(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    cmd(home).args(args).output().unwrap()
}

/// `dealflow sandbox serve` in the background until dropped; returns once its URL file
/// is written.
struct Served(std::process::Child);

impl Served {
    fn start(home: &std::path::Path) -> Served {
        let served = Served(
            cmd(home)
                .args(["sandbox", "serve"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let file = home.join("run/dealflow/sandbox.url");
        for _ in 0..300 {
            if std::fs::read_to_string(&file).is_ok_and(|s| s.lines().count() == 2) {
                return served;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("sandbox serve wrote no URL file at {}", file.display());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn google_scopes(home: &std::path::Path) -> Vec<String> {
    let out = run(home, &["accounts", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["connection"] == "google-oauth2")
        .map(|r| {
            r["scopes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn list_disconnect_and_connect_through_the_loopback_redirect() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let _world = Served::start(home);
    let out = run(home, &["accounts", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The demo rep's Google, Slack and Salesforce (the CRM when crm.provider says so).
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["connection"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["google-oauth2", "sign-in-with-slack", "salesforce"],
        "{rows}"
    );

    // The user takes gmail.send back at Google: the email asks for exactly that scope.
    let out = run(home, &["sandbox", "revoke", "google", "gmail.send"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("took back gmail.send"), "{stdout}");
    // Twice: nothing left to take back, and it says so.
    let out = run(home, &["sandbox", "revoke", "google", "gmail.send"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("was not granting gmail.send"), "{stdout}");
    assert!(!stdout.contains("took back"), "{stdout}");
    let before = google_scopes(home);
    assert_eq!(before.len(), 4, "{before:?}");
    let out = run(home, &["actions", "approve", "act-demo-initech-followup"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("google-oauth2 lacks gmail.send: an incremental connect adds it"),
        "{err}"
    );

    // Turned off in dealflow as well: that is said first.
    let out = run(home, &["accounts", "disconnect", "google"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("google-oauth2: disconnected"));
    let out = run(home, &["actions", "execute", "act-demo-initech-followup"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("disconnected in dealflow"),
        "{err}"
    );

    // Reconnect: the CLI says what it adds and keeps, prints the connect URL and waits
    // on its loopback listener.
    let mut child = cmd(home)
        .args(["accounts", "connect", "google"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep draining stderr after the URL: closing the pipe early would make the
    // child's next eprintln fail.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("adding") {
                let _ = tx.send(line);
            } else if let Some(u) = line.trim().strip_prefix("http://") {
                let _ = tx.send(format!("http://{u}"));
            }
        }
    });
    let plan = rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
    assert!(
        plan.contains("adding gmail.send; keeping the 4 already granted"),
        "{plan}"
    );
    let url = rx.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
    // The browser: the sandbox's consent page redirects to the CLI's loopback listener.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let body = rt.block_on(async { reqwest::get(&url).await.unwrap().text().await.unwrap() });
    assert!(body.contains("Account connected"), "{body}");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("connected google-oauth2") && stdout.contains("gmail.send"),
        "{stdout}"
    );
    // Added, nothing dropped.
    let after = google_scopes(home);
    assert_eq!(after.len(), 5, "{after:?}");
    assert!(
        before.iter().all(|s| after.contains(s)),
        "{before:?} {after:?}"
    );
    // And the email that waited for it goes.
    let out = run(home, &["actions", "execute", "act-demo-initech-followup"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The flag is cleared and both changes are in the audit log.
    let out = run(home, &["audit", "export"]);
    let changes = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("permissions.changed") && l.contains("google-oauth2"))
        .count();
    assert_eq!(changes, 2);
}

/// The names errors and `accounts list` print work as arguments too.
#[test]
fn accounts_take_the_connection_names_errors_print() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["accounts", "disconnect", "sign-in-with-slack"],
    );
    assert!(out.status.success(), "{out:?}");
    let out = run(dir.path(), &["accounts", "disconnect", "google-oauth2"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("google-oauth2: disconnected"));
}

/// A crash right after Gmail acknowledged a send, before dealflow recorded it: the
/// next run starts its own sandbox, whose Gmail still holds the mail (the world is
/// kept beside the store), so reconciliation finds it and nothing is sent twice.
#[test]
fn a_send_acknowledged_before_a_crash_is_found_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let out = run(home, &["actions", "approve", "act-demo-initech-followup"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let world = home.join("data/dealflow/sandbox-world.json");
    let sent_to_bill = || {
        let w: serde_json::Value = serde_json::from_slice(&std::fs::read(&world).unwrap()).unwrap();
        w["sent"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["to"] == "bill@initech.example")
            .count()
    };
    assert_eq!(sent_to_bill(), 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&world).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o077,
        0,
        "mail bodies are the owner's alone: {mode:o}"
    );
    // The crash: the row still says executing, long past its lease.
    let db = home.join("data/dealflow/sandbox.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "UPDATE actions SET state = 'executing', updated_at = 0 WHERE id = 'act-demo-initech-followup';",
        )
        .unwrap();
    // Any command that wires the pipeline reconciles first.
    let out = run(home, &["actions", "execute", "act-demo-stark-call"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reconciled act-demo-initech-followup: succeeded"),
        "{err}"
    );
    assert_eq!(sent_to_bill(), 1, "found, not sent again");
}

/// A stale URL file whose port another user now holds: joining needs the stranger to
/// prove the key, which it cannot, so the command runs its own sandbox; the key never
/// went over the wire and nothing signed in to the stranger.
#[test]
fn a_stranger_on_the_recorded_port_is_not_joined() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", stranger.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for conn in stranger.incoming() {
            let Ok(mut c) = conn else { break };
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let _ = tx.send(head);
            let body = r#"{"agent_client_secret":"stolen","proof":"0000"}"#;
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let file = home.join("run/dealflow/sandbox.url");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, format!("{url}\nsbx-admin-the-owners-key\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(home, &["accounts", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("google-oauth2"));
    // (An empty connection is the liveness probe before the file is handed back.)
    let seen: Vec<String> = rx.try_iter().filter(|h| !h.is_empty()).collect();
    assert_eq!(seen.len(), 1, "only the join attempt: {seen:?}");
    assert!(
        seen[0].starts_with("GET /sandbox/agent?nonce="),
        "{}",
        seen[0]
    );
    assert!(
        !seen[0].contains("the-owners-key"),
        "the key went over the wire"
    );
}
