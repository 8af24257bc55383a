//! The embedded store on a real SQLite file: CRUD, compare-and-set, permissions,
//! the audit chain, file modes, and two processes racing on one file.

#![allow(clippy::unwrap_used)]

use dealflow::core::audit::NewAuditEntry;
use dealflow::core::consent::Evidence;
use dealflow::core::domain::ActionKind;
use dealflow::core::domain::{Action, ActionParams, ActionState, Surface};
use dealflow::core::permissions::{Autonomy, PermissionChange};
use dealflow::sandbox::demo;
use dealflow::store::{ActionFilter, SqliteStore, Store, StoreError, Transition};
use std::path::Path;

fn action(id: &str, state: ActionState) -> Action {
    let params = ActionParams::PostSlack {
        channel: "#deals".into(),
        text: format!("hello from {id}"),
    };
    Action {
        id: id.into(),
        original: params.clone(),
        params,
        state,
        version: 1,
        surface: Surface::ActionCenter,
        confidence: 0.8,
        justification: "test".into(),
        title: format!("post {id}"),
        created_at: 1,
        updated_at: 1,
        outcome: None,
        evidence: None,
    }
}

fn t(from: ActionState, version: i64, to: ActionState) -> Transition {
    Transition {
        from,
        version,
        to,
        outcome: None,
        evidence: None,
        at: 2,
    }
}

fn entry(n: i64) -> NewAuditEntry {
    NewAuditEntry {
        ts: n,
        actor: "user:test".into(),
        surface: Some(Surface::Cli),
        event: "test.event".into(),
        action_id: None,
        outcome: "ok".into(),
        detail: serde_json::json!({ "n": n }),
    }
}

fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("nested/dir/store.db")).unwrap()
}

#[test]
fn file_is_private_and_in_wal_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.append_audit(entry(1)).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("nested/dir/store.db")), 0o600);
    assert_eq!(mode(&dir.path().join("nested/dir")), 0o700);
    let wal = dir.path().join("nested/dir/store.db-wal");
    assert!(wal.exists(), "WAL mode keeps a -wal file while open");
    assert_eq!(mode(&wal) & 0o077, 0, "the WAL is as private as the store");
}

#[test]
fn deals_contacts_and_actions_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    assert!(demo::seed(&s, 1_000).unwrap());
    assert!(!demo::seed(&s, 1_000).unwrap(), "seeding twice is a no-op");
    assert_eq!(s.list_deals().unwrap(), {
        let mut d = demo::deals(1_000);
        d.sort_by(|a, b| b.amount_cents.cmp(&a.amount_cents).then(a.id.cmp(&b.id)));
        d
    });
    assert_eq!(s.list_contacts().unwrap().len(), demo::contacts().len());
    let a = &demo::suggestions(1_000)[0];
    assert_eq!(&s.get_action(&a.id).unwrap(), a);
    assert!(matches!(
        s.get_action("nope"),
        Err(StoreError::NotFound { .. })
    ));
    let proposed = s
        .list_actions(&ActionFilter {
            states: vec![ActionState::Proposed],
            limit: None,
        })
        .unwrap();
    assert_eq!(proposed.len(), demo::suggestions(1_000).len());
}

#[test]
fn transitions_are_compare_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.insert_action(&action("a1", ActionState::Approved))
        .unwrap();
    let won = s
        .transition("a1", &t(ActionState::Approved, 1, ActionState::Executing))
        .unwrap();
    assert_eq!((won.state, won.version), (ActionState::Executing, 2));
    // A second claimer with the stale version loses, and is told what it found.
    match s.transition("a1", &t(ActionState::Approved, 1, ActionState::Executing)) {
        Err(StoreError::Conflict {
            found,
            found_version,
            ..
        }) => {
            assert_eq!((found, found_version), (ActionState::Executing, 2));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Transitions off the lifecycle graph are refused before touching the row.
    assert!(matches!(
        s.transition("a1", &t(ActionState::Executing, 2, ActionState::Approved)),
        Err(StoreError::InvalidTransition { .. })
    ));
    let done = s
        .transition(
            "a1",
            &Transition {
                outcome: Some("ts=1712.0001".into()),
                ..t(ActionState::Executing, 2, ActionState::Succeeded)
            },
        )
        .unwrap();
    assert_eq!(done.outcome.as_deref(), Some("ts=1712.0001"));
}

#[test]
fn an_edit_voids_consent_and_returns_to_proposed() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.insert_action(&action("a1", ActionState::Proposed))
        .unwrap();
    let ev = Evidence::Reviewed {
        actor: "user:t".into(),
        at: 2,
    };
    let approved = s
        .transition(
            "a1",
            &Transition {
                evidence: Some(ev.clone()),
                ..t(ActionState::Proposed, 1, ActionState::Approved)
            },
        )
        .unwrap();
    assert_eq!(approved.evidence, Some(ev));
    let edited_params = ActionParams::PostSlack {
        channel: "#deals".into(),
        text: "edited".into(),
    };
    let edited = s
        .edit_action("a1", approved.version, &edited_params, 3)
        .unwrap();
    assert_eq!(edited.state, ActionState::Proposed);
    assert_eq!(edited.evidence, None);
    assert!(edited.is_edited());
    assert_ne!(edited.params, edited.original);
    // An edit may not change the kind, and a stale version loses.
    let email = ActionParams::SearchContacts { query: "x".into() };
    assert!(s.edit_action("a1", edited.version, &email, 4).is_err());
    assert!(matches!(
        s.edit_action("a1", 1, &edited_params, 4),
        Err(StoreError::Conflict { .. })
    ));
}

#[test]
fn interrupted_executions_are_marked_for_reconciliation() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.insert_action(&action("a1", ActionState::Executing))
        .unwrap();
    s.insert_action(&action("a2", ActionState::Approved))
        .unwrap();
    let swept = s.mark_interrupted(5).unwrap();
    assert_eq!(
        swept.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a1"]
    );
    assert_eq!(
        s.get_action("a1").unwrap().state,
        ActionState::NeedsReconciliation
    );
    assert_eq!(s.get_action("a2").unwrap().state, ActionState::Approved);
}

#[test]
fn permission_changes_are_validated_and_audited_together() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let change = PermissionChange::SetAutonomy {
        kind: ActionKind::SendEmail,
        level: Autonomy::Ciba,
    };
    let (p, e) = s.change_permissions(&change, entry(1)).unwrap();
    assert_eq!(p.autonomy_for(ActionKind::SendEmail), Autonomy::Ciba);
    assert_eq!(s.load_permissions().unwrap(), p);
    assert_eq!(e.event, "test.event");
    assert_eq!(e.detail["summary"], "autonomy send_email: review -> ciba");
    // An invalid change leaves both permissions and the audit log untouched.
    let bad = PermissionChange::SetForceReviewBelow { below: 2.0 };
    assert!(matches!(
        s.change_permissions(&bad, entry(2)),
        Err(StoreError::Permission(_))
    ));
    assert_eq!(s.load_permissions().unwrap(), p);
    assert_eq!(s.audit_head().unwrap().0, 1);
}

#[test]
fn actions_never_change_permissions() {
    // Invariant 2 at the store: no action path writes permissions.
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let before = s.load_permissions().unwrap();
    demo::seed(&s, 1).unwrap();
    for a in s.list_actions(&ActionFilter::default()).unwrap() {
        let ap = s
            .transition(&a.id, &t(a.state, a.version, ActionState::Approved))
            .unwrap();
        let ex = s
            .transition(&a.id, &t(ap.state, ap.version, ActionState::Executing))
            .unwrap();
        s.transition(&a.id, &t(ex.state, ex.version, ActionState::Succeeded))
            .unwrap();
    }
    assert_eq!(s.load_permissions().unwrap(), before);
}

fn raw(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("nested/dir/store.db")).unwrap()
}

#[test]
fn audit_chain_catches_altered_removed_and_reordered_rows() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for i in 1..=20 {
        s.append_audit(entry(i)).unwrap();
    }
    assert_eq!(s.verify_audit().unwrap(), Ok(20));

    raw(dir.path())
        .execute("UPDATE audit SET outcome = 'denied' WHERE seq = 7", [])
        .unwrap();
    assert_eq!(s.verify_audit().unwrap().unwrap_err().seq, 7);
    raw(dir.path())
        .execute("UPDATE audit SET outcome = 'ok' WHERE seq = 7", [])
        .unwrap();
    assert_eq!(s.verify_audit().unwrap(), Ok(20));

    // Reorder: swap the contents of two rows, keeping their seq numbers.
    let c = raw(dir.path());
    c.execute_batch(
        "UPDATE audit SET seq = -1 WHERE seq = 11;
         UPDATE audit SET seq = 11 WHERE seq = 12;
         UPDATE audit SET seq = 12 WHERE seq = -1;",
    )
    .unwrap();
    assert_eq!(s.verify_audit().unwrap().unwrap_err().seq, 11);
    c.execute_batch(
        "UPDATE audit SET seq = -1 WHERE seq = 11;
         UPDATE audit SET seq = 11 WHERE seq = 12;
         UPDATE audit SET seq = 12 WHERE seq = -1;",
    )
    .unwrap();
    assert_eq!(s.verify_audit().unwrap(), Ok(20));

    c.execute("DELETE FROM audit WHERE seq = 20", []).unwrap();
    let cut = s.verify_audit().unwrap().unwrap_err();
    assert_eq!(cut.seq, 20, "{cut}");

    c.execute("DELETE FROM audit WHERE seq = 3", []).unwrap();
    assert_eq!(s.verify_audit().unwrap().unwrap_err().seq, 3);
}

#[test]
fn concurrent_appenders_never_fork_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/store.db");
    open(dir.path());
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let s = SqliteStore::open(&path).unwrap();
                for i in 0..50 {
                    s.append_audit(entry(w * 1000 + i)).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    assert_eq!(open(dir.path()).verify_audit().unwrap(), Ok(200));
}

/// Child half of the two-process test: claims every approved action it can and writes
/// the ids it won to the file named by DEALFLOW_TEST_CLAIMS.
#[test]
fn helper_two_process_claimer() {
    let (Ok(store), Ok(out)) = (
        std::env::var("DEALFLOW_TEST_STORE"),
        std::env::var("DEALFLOW_TEST_CLAIMS"),
    ) else {
        return; // Only meaningful when started by `two_processes_execute_each_action_once`.
    };
    let s = SqliteStore::open(Path::new(&store)).unwrap();
    // Start together so the two processes really race for the same rows.
    let go = Path::new(&out).with_file_name("go");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !go.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let mut won = Vec::new();
    let all = s.list_actions(&ActionFilter::default()).unwrap();
    for a in all.iter().rev() {
        // Read the current version just before claiming, as the executor does.
        let cur = s.get_action(&a.id).unwrap();
        if cur.state != ActionState::Approved {
            continue;
        }
        match s.transition(
            &a.id,
            &t(ActionState::Approved, cur.version, ActionState::Executing),
        ) {
            Ok(_) => won.push(a.id.clone()),
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    std::fs::write(out, won.join("\n")).unwrap();
}

#[test]
fn two_processes_execute_each_action_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/store.db");
    let s = open(dir.path());
    let n = 400;
    for i in 0..n {
        s.insert_action(&action(&format!("a{i:04}"), ActionState::Approved))
            .unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|k| {
            let claims = dir.path().join(format!("claims{k}"));
            let child = std::process::Command::new(&exe)
                .args([
                    "helper_two_process_claimer",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("DEALFLOW_TEST_STORE", &path)
                .env("DEALFLOW_TEST_CLAIMS", &claims)
                .spawn()
                .unwrap();
            (child, claims)
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(dir.path().join("go"), "").unwrap();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut per_child = Vec::new();
    for (mut child, claims) in children {
        assert!(child.wait().unwrap().success());
        let text = std::fs::read_to_string(claims).unwrap();
        let ids: Vec<_> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        per_child.push(ids.len());
        for id in ids {
            *seen.entry(id).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), n, "every action claimed");
    assert!(seen.values().all(|&c| c == 1), "no action claimed twice");
    assert_eq!(per_child.iter().sum::<usize>(), n);
    let executing = s
        .list_actions(&ActionFilter {
            states: vec![ActionState::Executing],
            limit: None,
        })
        .unwrap();
    assert_eq!(executing.len(), n);
    eprintln!("claims per process: {per_child:?}");
}
