//! `dealflow accounts` on the real binary against the sandbox: list, an audited
//! app-level disconnect that blocks execution, and the connect flow completed by a
//! "browser" (this test) following the consent page to the CLI's loopback listener.

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

#[test]
fn list_disconnect_and_connect_through_the_loopback_redirect() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let out = cmd(home)
        .args(["accounts", "list", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);

    let out = cmd(home)
        .args(["accounts", "disconnect", "google"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("google-oauth2: disconnected"));
    let out = cmd(home)
        .args(["actions", "approve", "act-demo-initech-followup"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("disconnected in dealflow"),
        "{err}"
    );

    // Reconnect: the CLI prints the connect URL and waits on its loopback listener.
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
            if let Some(u) = line.trim().strip_prefix("http://") {
                let _ = tx.send(format!("http://{u}"));
            }
        }
    });
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
    // The flag is cleared and both changes are in the audit log.
    let out = cmd(home).args(["audit", "export"]).output().unwrap();
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
    let out = cmd(dir.path())
        .args(["accounts", "disconnect", "sign-in-with-slack"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = cmd(dir.path())
        .args(["accounts", "disconnect", "google-oauth2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("google-oauth2: disconnected"));
}
