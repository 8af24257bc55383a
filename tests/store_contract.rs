//! One contract for every store backend, run against a real SQLite file and a real
//! Redis server (DEALFLOW_TEST_REDIS_URL, default redis://127.0.0.1:6379): CRUD,
//! compare-and-set, permissions, the audit chain, and two processes racing over one
//! store. Each Redis test uses its own random namespace and deletes it afterwards.
//! Backend-specific checks (file modes, namespace isolation, team policy) follow.

#![allow(clippy::unwrap_used)]

use dealflow::core::audit::NewAuditEntry;
use dealflow::core::consent::{Evidence, Recorded, Seal};
use dealflow::core::domain::ActionKind;
use dealflow::core::domain::{Action, ActionParams, ActionState, Surface};
use dealflow::core::permissions::{Autonomy, PermissionChange};
use dealflow::sandbox::demo;
use dealflow::store::{
    ActionFilter, ActionPage, RedisStore, SqliteStore, Store, StoreError, Transition,
};
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

/// A sealed entry written into the SQLite file's audit table as the store would, by
/// SQL (bulk seeding, and a row put back after a test removed it).
fn insert_sealed(c: &rusqlite::Connection, e: &dealflow::core::audit::AuditEntry) {
    c.execute(
        "INSERT INTO audit (seq, ts, actor, surface, event, action_id, outcome, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        rusqlite::params![
            e.seq,
            e.ts,
            e.actor,
            e.surface.map(|s| s.as_str()),
            e.event,
            e.action_id,
            e.outcome,
            e.detail.to_string(),
            e.prev_hash,
            e.hash
        ],
    )
    .unwrap();
}

fn redis_url() -> String {
    std::env::var("DEALFLOW_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The CA of a `rediss://` test server (`DEALFLOW_TEST_REDIS_CA_FILE`), so the whole
/// suite runs over TLS too: `DEALFLOW_TEST_REDIS_URL=rediss://localhost:PORT`.
fn redis_ca() -> Option<std::path::PathBuf> {
    std::env::var_os("DEALFLOW_TEST_REDIS_CA_FILE").map(Into::into)
}

fn open_redis(ns: &str, team: Option<&str>) -> dealflow::store::Result<RedisStore> {
    let connect = dealflow::store::redis::Connect {
        ca_file: redis_ca(),
        ..Default::default()
    };
    RedisStore::open_with(&redis_url(), &connect, ns, team)
}

/// A bare connection to the test server, over TLS when it is.
fn raw_redis() -> ::redis::Connection {
    let client = match redis_ca() {
        None => ::redis::Client::open(redis_url()).unwrap(),
        Some(ca) => ::redis::Client::build_with_tls(
            redis_url(),
            ::redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(ca).unwrap()),
            },
        )
        .unwrap(),
    };
    client.get_connection().unwrap()
}

fn unique_namespace(tag: &str) -> String {
    format!("test-{tag}-{:016x}", rand::random::<u64>())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Sqlite,
    Redis,
}

/// One backend under test: the store, plus ways to reopen it (another connection, as a
/// second process would) and to tamper with its audit rows behind the store's back.
struct Fx {
    kind: Kind,
    dir: tempfile::TempDir,
    ns: String,
    store: Box<dyn Store>,
}

impl Fx {
    fn new(kind: Kind) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let ns = unique_namespace("c");
        let store = open_kind(kind, &locator(kind, dir.path(), &ns));
        Fx {
            kind,
            dir,
            ns,
            store,
        }
    }

    fn s(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// What a second process needs to open the same store.
    fn locator(&self) -> String {
        locator(self.kind, self.dir.path(), &self.ns)
    }

    fn reopen(&self) -> Box<dyn Store> {
        open_kind(self.kind, &self.locator())
    }

    fn redis(&self) -> ::redis::Connection {
        raw_redis()
    }

    fn audit_key(&self) -> String {
        format!("dealflow:u:{{{}}}:audit:log", self.ns)
    }

    /// An attacker with the server's credential rewriting the user's audit stream: a
    /// stream entry cannot be replaced in place, so the whole stream is read, edited
    /// and written again (which a stream allows only from scratch).
    fn rewrite_redis(&self, edit: impl FnOnce(&mut Vec<(i64, serde_json::Value)>)) {
        let mut c = self.redis();
        let rows: Vec<(String, Vec<(String, String)>)> = ::redis::cmd("XRANGE")
            .arg(self.audit_key())
            .arg("-")
            .arg("+")
            .query(&mut c)
            .unwrap();
        let mut entries: Vec<(i64, serde_json::Value)> = rows
            .into_iter()
            .map(|(id, fields)| {
                let seq = id.split_once('-').unwrap().0.parse().unwrap();
                (seq, serde_json::from_str(&fields[0].1).unwrap())
            })
            .collect();
        edit(&mut entries);
        let mut pipe = ::redis::pipe();
        pipe.atomic().cmd("DEL").arg(self.audit_key()).ignore();
        for (seq, e) in &entries {
            pipe.cmd("XADD")
                .arg(self.audit_key())
                .arg(format!("{seq}-0"))
                .arg("entry")
                .arg(e.to_string())
                .ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
    }

    fn tamper_outcome(&self, seq: i64, outcome: &str) {
        match self.kind {
            Kind::Sqlite => {
                raw(self.dir.path())
                    .execute(
                        "UPDATE audit SET outcome = ?1 WHERE seq = ?2",
                        rusqlite::params![outcome, seq],
                    )
                    .unwrap();
            }
            Kind::Redis => self.rewrite_redis(|entries| {
                for (s, e) in entries.iter_mut() {
                    if *s == seq {
                        e["outcome"] = outcome.into();
                    }
                }
            }),
        }
    }

    /// Swaps the contents of two rows, keeping their positions.
    fn swap(&self, a: i64, b: i64) {
        match self.kind {
            Kind::Sqlite => raw(self.dir.path())
                .execute_batch(&format!(
                    "UPDATE audit SET seq = -1 WHERE seq = {a};
                     UPDATE audit SET seq = {a} WHERE seq = {b};
                     UPDATE audit SET seq = {b} WHERE seq = -1;"
                ))
                .unwrap(),
            Kind::Redis => self.rewrite_redis(|entries| {
                let ia = entries.iter().position(|(s, _)| *s == a).unwrap();
                let ib = entries.iter().position(|(s, _)| *s == b).unwrap();
                let (ea, eb) = (entries[ia].1.clone(), entries[ib].1.clone());
                entries[ia].1 = eb;
                entries[ib].1 = ea;
            }),
        }
    }

    fn delete(&self, seq: i64) {
        match self.kind {
            Kind::Sqlite => {
                raw(self.dir.path())
                    .execute("DELETE FROM audit WHERE seq = ?1", [seq])
                    .unwrap();
            }
            Kind::Redis => {
                let mut c = self.redis();
                let _: () = ::redis::cmd("XDEL")
                    .arg(self.audit_key())
                    .arg(format!("{seq}-0"))
                    .query(&mut c)
                    .unwrap();
            }
        }
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        if self.kind == Kind::Redis
            && let Ok(s) = open_redis(&self.ns, None)
        {
            let _ = s.purge_namespace();
        }
    }
}

fn locator(kind: Kind, dir: &Path, ns: &str) -> String {
    match kind {
        Kind::Sqlite => dir.join("nested/dir/store.db").display().to_string(),
        Kind::Redis => ns.to_string(),
    }
}

fn open_kind(kind: Kind, locator: &str) -> Box<dyn Store> {
    match kind {
        Kind::Sqlite => Box::new(SqliteStore::open(Path::new(locator)).unwrap()),
        Kind::Redis => Box::new(open_redis(locator, None).unwrap()),
    }
}

fn raw(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("nested/dir/store.db")).unwrap()
}

/// Runs each contract test against both backends: `sqlite::name` and `redis::name`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::Fx::new(super::Kind::Sqlite)); } )*
        }
        mod redis {
            $( #[test] fn $name() { super::$name(&super::Fx::new(super::Kind::Redis)); } )*
        }
    };
}

contract!(
    deals_contacts_and_actions_round_trip,
    transitions_are_compare_and_set,
    an_edit_voids_consent_and_returns_to_proposed,
    interrupted_executions_are_marked_for_reconciliation,
    permission_changes_are_validated_and_audited_together,
    actions_never_change_permissions,
    audit_chain_catches_altered_removed_and_reordered_rows,
    concurrent_appenders_never_fork_the_chain,
    concurrent_permission_changes_all_apply_and_chain,
    two_processes_execute_each_action_once,
    leases_admit_one_holder_until_released_or_lapsed,
    audit_events_since_reads_one_event_over_one_window,
    upsert_many_writes_and_updates_in_one_go,
    audit_query_pages_by_seq_both_ways_with_kinds_pushed_down,
    caches_round_trip_per_name_and_are_replaced_whole,
    action_pages_walk_finished_actions_by_keyset_and_counts_agree,
);

/// The import's batch write: many deals and contacts in one call, read back as written;
/// a second batch updates what it names and leaves the rest alone.
fn upsert_many_writes_and_updates_in_one_go(fx: &Fx) {
    use dealflow::core::domain::{Contact, Deal, Stage};
    let s = fx.s();
    let deal = |i: i64| Deal {
        crm: None,
        id: format!("deal-{i:05}"),
        name: format!("Deal {i}"),
        account: format!("Account {}", i % 7),
        amount_cents: i * 100,
        stage: Stage::Proposal,
        owner: "dana".into(),
        last_touch: 1_000 + i,
        notes: String::new(),
    };
    let contact = |i: i64| Contact {
        id: format!("contact-{i:04}"),
        name: format!("Person {i:04}"),
        email: format!("p{i}@example.com"),
        account: "Acme".into(),
        title: "CFO".into(),
    };
    let deals: Vec<Deal> = (1..=2_000).map(deal).collect();
    let contacts: Vec<Contact> = (1..=300).map(contact).collect();
    s.upsert_many(&deals, &contacts).unwrap();
    s.upsert_many(&[], &[]).unwrap();
    let mut stored = s.list_deals().unwrap();
    stored.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(stored, deals);
    assert_eq!(s.list_contacts().unwrap(), contacts);

    let changed = Deal {
        amount_cents: 99,
        stage: Stage::ClosedWon,
        ..deal(7)
    };
    let renamed = Contact {
        title: "CEO".into(),
        ..contact(3)
    };
    s.upsert_many(
        std::slice::from_ref(&changed),
        std::slice::from_ref(&renamed),
    )
    .unwrap();
    assert_eq!(s.get_deal("deal-00007").unwrap(), Some(changed));
    assert_eq!(s.get_deal("deal-00008").unwrap(), Some(deal(8)));
    assert_eq!(s.list_deals().unwrap().len(), 2_000);
    let cs = s.list_contacts().unwrap();
    assert_eq!(cs.len(), 300);
    assert_eq!(cs[2], renamed);
    assert_eq!(cs[3], contact(4));
}

/// A reader's cache (the calibration snapshot): absent until saved, replaced whole,
/// one per name, seen by another connection.
fn caches_round_trip_per_name_and_are_replaced_whole(fx: &Fx) {
    let s = fx.s();
    assert_eq!(s.load_cache("calibration").unwrap(), None);
    s.save_cache("calibration", "tag\n{\"seq\":1}").unwrap();
    s.save_cache("other", "x").unwrap();
    assert_eq!(
        s.load_cache("calibration").unwrap().as_deref(),
        Some("tag\n{\"seq\":1}")
    );
    s.save_cache("calibration", "tag2\n{}").unwrap();
    assert_eq!(
        fx.reopen().load_cache("calibration").unwrap().as_deref(),
        Some("tag2\n{}")
    );
    assert_eq!(s.load_cache("other").unwrap().as_deref(), Some("x"));
}

/// Keyset pages of the audit log (issue 18): by seq in both directions, bounded on
/// both sides, with the kind filter applied by the store, and equal to filtering the
/// whole log by hand. A rare kind sits far apart, so the Redis walk crosses its
/// per-round-trip budget and carries on from where it stopped.
fn audit_query_pages_by_seq_both_ways_with_kinds_pushed_down(fx: &Fx) {
    use dealflow::store::AuditQuery;
    let s = fx.s();
    let n = 5000;
    for i in 1..=n {
        let detail = match i % 4 {
            _ if i == 2 || i == n - 1 => serde_json::json!({ "kind": "close_deal", "n": i }),
            0 => serde_json::json!({ "kind": "send_email", "n": i }),
            1 => serde_json::json!({ "kind": "post_slack", "n": i }),
            // A kind deeper in the detail is not the entry's kind.
            2 => serde_json::json!({ "n": i, "params": { "kind": "send_email" } }),
            _ => serde_json::json!(["not", "an", "object"]),
        };
        s.append_audit(NewAuditEntry { detail, ..entry(i) })
            .unwrap();
    }
    let all = s.audit_page(0, n as usize + 1).unwrap();
    assert_eq!(all.len(), n as usize);
    let by_hand = |q: &AuditQuery| -> Vec<i64> {
        let mut v: Vec<i64> = all.iter().filter(|e| q.selects(e)).map(|e| e.seq).collect();
        if q.newest_first {
            v.reverse();
        }
        v.truncate(q.limit);
        v
    };
    let seqs = |q: &AuditQuery| -> Vec<i64> {
        s.audit_query(q)
            .unwrap()
            .into_iter()
            .map(|e| e.seq)
            .collect()
    };
    let kinds = |k: &[&str]| k.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    let mut checked = 0;
    for newest_first in [true, false] {
        for (after, before) in [(0, None), (0, Some(4000)), (100, Some(200)), (4990, None)] {
            for k in [
                kinds(&[]),
                kinds(&["send_email"]),
                kinds(&["close_deal"]),
                kinds(&["post_slack", "close_deal"]),
                kinds(&["no_such_kind"]),
            ] {
                for limit in [1, 7, 300] {
                    let q = AuditQuery {
                        before,
                        after,
                        newest_first,
                        kinds: k.clone(),
                        limit,
                    };
                    assert_eq!(seqs(&q), by_hand(&q), "{q:?}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 120);
    // The rare kind, far apart: both, in either direction, with nothing in between.
    let rare = |newest_first| AuditQuery {
        newest_first,
        kinds: kinds(&["close_deal"]),
        limit: 10,
        ..AuditQuery::default()
    };
    assert_eq!(seqs(&rare(true)), [n - 1, 2]);
    assert_eq!(seqs(&rare(false)), [2, n - 1]);
    // Keyset paging newest first walks the whole log once, page by page.
    let mut walked = Vec::new();
    let mut before = None;
    loop {
        let page = seqs(&AuditQuery {
            before,
            newest_first: true,
            limit: 777,
            ..AuditQuery::default()
        });
        let Some(&last) = page.last() else { break };
        walked.extend(page);
        before = Some(last);
    }
    assert_eq!(walked, (1..=n).rev().collect::<Vec<_>>());
    // Entries come back whole: their hashes still chain.
    let page = s
        .audit_query(&AuditQuery {
            after: 10,
            limit: 5,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(page[0].prev_hash, all[9].hash);
    assert_eq!(page, all[10..15]);
}

/// The query the blast-radius budgets count with: entries of one event stamped at or
/// after `since`, newest first, and nothing else — not other events in the window, not
/// the same event before it.
fn audit_events_since_reads_one_event_over_one_window(fx: &Fx) {
    let s = fx.s();
    for (ts, event) in [
        (100, "action.approved"),
        (200, "action.rejected"),
        (300, "action.approved"),
        (400, "action.executed"),
        (500, "action.approved"),
    ] {
        s.append_audit(NewAuditEntry {
            event: event.into(),
            action_id: Some(format!("act-{ts}")),
            ..entry(ts)
        })
        .unwrap();
    }
    let got = |since| -> Vec<i64> {
        s.audit_events_since("action.approved", since)
            .unwrap()
            .into_iter()
            .map(|e| e.ts)
            .collect()
    };
    assert_eq!(got(300), [500, 300]);
    assert_eq!(got(0), [500, 300, 100]);
    assert_eq!(got(501), Vec::<i64>::new());
    let rejected = s.audit_events_since("action.rejected", 0).unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].action_id.as_deref(), Some("act-200"));
    // The entries come back whole: their hashes still chain.
    assert_eq!(s.verify_audit().unwrap(), Ok(5));
    // Another connection (another process) reads the same.
    assert_eq!(
        fx.reopen()
            .audit_events_since("action.approved", 300)
            .unwrap()
            .len(),
        2
    );
}

fn leases_admit_one_holder_until_released_or_lapsed(fx: &Fx) {
    use dealflow::store::lease;
    let (a, b) = (fx.s(), fx.reopen());
    let t0 = 1_000;
    assert_eq!(
        a.take_lease(lease::SUGGEST, "tui", t0, t0 + 100).unwrap(),
        Ok(())
    );
    // Another process is refused and told who holds it, until when.
    let held = b
        .take_lease(lease::SUGGEST, "cli", t0 + 10, t0 + 110)
        .unwrap()
        .unwrap_err();
    assert_eq!((held.holder.as_str(), held.until), ("tui", t0 + 100));
    // Another lease name is independent.
    assert_eq!(
        b.take_lease(lease::BATCH, "cli", t0, t0 + 50).unwrap(),
        Ok(())
    );
    // The holder extends its own; a release by someone else does nothing.
    assert_eq!(
        a.take_lease(lease::SUGGEST, "tui", t0 + 20, t0 + 200)
            .unwrap(),
        Ok(())
    );
    b.release_lease(lease::SUGGEST, "cli").unwrap();
    assert!(
        b.take_lease(lease::SUGGEST, "cli", t0 + 150, t0 + 300)
            .unwrap()
            .is_err()
    );
    assert_eq!(
        a.leases(t0 + 30)
            .unwrap()
            .iter()
            .map(|l| (l.name.as_str(), l.holder.as_str()))
            .collect::<Vec<_>>(),
        vec![(lease::BATCH, "cli"), (lease::SUGGEST, "tui")]
    );
    // A crashed holder blocks no one past its time.
    assert_eq!(
        b.take_lease(lease::SUGGEST, "cli", t0 + 200, t0 + 300)
            .unwrap(),
        Ok(())
    );
    assert!(
        a.take_lease(lease::SUGGEST, "tui", t0 + 201, t0 + 400)
            .unwrap()
            .is_err()
    );
    // Released by its holder, it is free at once.
    b.release_lease(lease::SUGGEST, "cli").unwrap();
    assert_eq!(
        a.take_lease(lease::SUGGEST, "tui", t0 + 202, t0 + 400)
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        a.leases(t0 + 60).unwrap().len(),
        1,
        "the batch lease lapsed"
    );
}

fn deals_contacts_and_actions_round_trip(fx: &Fx) {
    let s = fx.s();
    assert!(demo::seed(s, 1_000).unwrap());
    assert!(!demo::seed(s, 1_000).unwrap(), "seeding twice is a no-op");
    assert_eq!(s.list_deals().unwrap(), {
        let mut d = demo::deals(1_000);
        d.sort_by(|a, b| b.amount_cents.cmp(&a.amount_cents).then(a.id.cmp(&b.id)));
        d
    });
    let first = &demo::deals(1_000)[0];
    assert_eq!(s.get_deal(&first.id).unwrap().as_ref(), Some(first));
    assert_eq!(s.get_deal("nope").unwrap(), None);
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
    // Inserting an id twice is refused, and leaves the first alone.
    let dup = Action {
        title: "duplicate".into(),
        ..a.clone()
    };
    assert!(s.insert_action(&dup).is_err());
    assert_eq!(&s.get_action(&a.id).unwrap(), a);
    // Newest first, and the limit applies.
    s.insert_action(&Action {
        id: "zz-newest".into(),
        created_at: 9_999_999_999_999,
        ..action("x", ActionState::Proposed)
    })
    .unwrap();
    let top = s
        .list_actions(&ActionFilter {
            states: vec![],
            limit: Some(1),
        })
        .unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].id, "zz-newest");
    // A page of some states is the head of the whole list of them, in the same order,
    // ties on created_at broken by id (the TUI's first frame is such a page).
    for i in 0..6 {
        s.insert_action(&Action {
            id: format!("tie-{i}"),
            created_at: 5_000_000_000_000,
            ..action(
                "x",
                if i % 2 == 0 {
                    ActionState::Proposed
                } else {
                    ActionState::Approved
                },
            )
        })
        .unwrap();
    }
    let states = vec![ActionState::Proposed, ActionState::Approved];
    let ids = |limit| -> Vec<String> {
        s.list_actions(&ActionFilter {
            states: states.clone(),
            limit,
        })
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect()
    };
    let all = ids(None);
    assert_eq!(ids(Some(4)), all[..4].to_vec());
    assert_eq!(all[1..4], ["tie-5", "tie-4", "tie-3"]);
}

/// Issue 18: the Actions tab holds every pending action and pages the finished ones,
/// most recently finished first by (updated_at, id), from the last one it holds. Ties on
/// updated_at are broken by id, so no page repeats or skips a row; counts match.
fn action_pages_walk_finished_actions_by_keyset_and_counts_agree(fx: &Fx) {
    let s = fx.s();
    let finished = [
        ActionState::Succeeded,
        ActionState::Failed,
        ActionState::Rejected,
    ];
    let states = [
        ActionState::Succeeded,
        ActionState::Proposed,
        ActionState::Failed,
        ActionState::Rejected,
        ActionState::AwaitingConsent,
    ];
    // 25 actions, five to each updated_at (ties everywhere), created in the other order.
    for i in 0..25 {
        s.insert_action(&Action {
            created_at: 2_000 - i as i64,
            updated_at: 1_000 + (i / 5) as i64,
            ..action(&format!("a{i:02}"), states[i % 5])
        })
        .unwrap();
    }
    let mut listed = s
        .list_actions(&ActionFilter {
            states: finished.to_vec(),
            limit: None,
        })
        .unwrap();
    listed.sort_by(|a, b| (b.updated_at, &b.id).cmp(&(a.updated_at, &a.id)));
    let expected: Vec<String> = listed.into_iter().map(|a| a.id).collect();
    assert_eq!(expected.len(), 15);
    assert_eq!(s.count_actions(&finished).unwrap(), 15);
    assert_eq!(s.count_actions(&[]).unwrap(), 25);
    assert_eq!(s.count_actions(&[ActionState::Executing]).unwrap(), 0);
    let mut walked = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .action_page(&ActionPage {
                states: finished.to_vec(),
                before: before.clone(),
                limit: 4,
            })
            .unwrap();
        assert!(page.len() <= 4);
        assert!(page.iter().all(|a| a.state.is_terminal()));
        let Some(last) = page.last() else { break };
        before = Some((last.updated_at, last.id.clone()));
        walked.extend(page.into_iter().map(|a| a.id));
        assert!(walked.len() <= expected.len(), "a page repeats: {walked:?}");
    }
    assert_eq!(
        walked, expected,
        "the pages, end to end, are the list in order"
    );
    // No states: every action.
    let all = s
        .action_page(&ActionPage {
            states: vec![],
            before: Some((1_003, "a17".into())),
            limit: 100,
        })
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids[..3], ["a16", "a15", "a14"]);
    assert_eq!(all.len(), 17);
}

fn transitions_are_compare_and_set(fx: &Fx) {
    let s = fx.s();
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
    assert!(matches!(
        s.transition(
            "ghost",
            &t(ActionState::Approved, 1, ActionState::Executing)
        ),
        Err(StoreError::NotFound { .. })
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
    assert_eq!(done.updated_at, 2);
    assert_eq!(s.get_action("a1").unwrap(), done);
}

fn an_edit_voids_consent_and_returns_to_proposed(fx: &Fx) {
    let s = fx.s();
    s.insert_action(&action("a1", ActionState::Proposed))
        .unwrap();
    // The store keeps evidence and its seal exactly as written (execution, not the
    // store, decides whether the seal verifies: tests/consent_attacks.rs).
    let ev = Recorded {
        evidence: Evidence::Reviewed {
            actor: "user:t".into(),
            at: 2,
        },
        seal: Some(Seal {
            version: 1,
            at: 2,
            gate: "review".into(),
            mac: "00ff".into(),
        }),
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
    assert_eq!(approved.evidence, Some(ev.clone()));
    // Moving on without new evidence keeps the record that was written.
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
    assert_eq!(edited.params, edited_params);
    // An edit may not change the kind, and a stale version loses.
    let email = ActionParams::SearchContacts { query: "x".into() };
    assert!(s.edit_action("a1", edited.version, &email, 4).is_err());
    assert!(matches!(
        s.edit_action("a1", 1, &edited_params, 4),
        Err(StoreError::Conflict { .. })
    ));
    // A finished action is not editable.
    let ap = s
        .transition(
            "a1",
            &Transition {
                evidence: Some(ev),
                ..t(ActionState::Proposed, edited.version, ActionState::Approved)
            },
        )
        .unwrap();
    let ex = s
        .transition("a1", &t(ap.state, ap.version, ActionState::Executing))
        .unwrap();
    assert_eq!(
        ex.evidence, ap.evidence,
        "the record is kept into execution"
    );
    // Kept is not believed: this seal was written straight into the store, not made
    // under the user's consent key, so what execution opens it with refuses it.
    let refused = dealflow::runtime::seal::key()
        .unwrap()
        .open(&ex)
        .map(|_| ());
    assert!(refused.unwrap_err().contains("does not match"));
    assert!(matches!(
        s.edit_action("a1", ex.version, &edited_params, 5),
        Err(StoreError::NotEditable { .. })
    ));
}

fn interrupted_executions_are_marked_for_reconciliation(fx: &Fx) {
    let s = fx.s();
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

fn permission_changes_are_validated_and_audited_together(fx: &Fx) {
    let s = fx.s();
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
    assert_eq!(s.verify_audit().unwrap(), Ok(1));
}

fn actions_never_change_permissions(fx: &Fx) {
    // Invariant 2 at the store: no action path writes permissions.
    let s = fx.s();
    let before = s.load_permissions().unwrap();
    demo::seed(s, 1).unwrap();
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

fn audit_chain_catches_altered_removed_and_reordered_rows(fx: &Fx) {
    let s = fx.s();
    for i in 1..=20 {
        s.append_audit(entry(i)).unwrap();
    }
    assert_eq!(s.verify_audit().unwrap(), Ok(20));
    assert_eq!(
        s.audit_page(5, 3)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        [6, 7, 8]
    );

    fx.tamper_outcome(7, "denied");
    assert_eq!(s.verify_audit().unwrap().unwrap_err().seq, 7);
    fx.tamper_outcome(7, "ok");
    assert_eq!(s.verify_audit().unwrap(), Ok(20));

    // Reorder: swap the contents of two rows, keeping their seq numbers.
    fx.swap(11, 12);
    assert_eq!(s.verify_audit().unwrap().unwrap_err().seq, 11);
    fx.swap(11, 12);
    assert_eq!(s.verify_audit().unwrap(), Ok(20));

    fx.delete(20);
    let cut = s.verify_audit().unwrap().unwrap_err();
    assert_eq!(cut.seq, 20, "{cut}");

    fx.delete(3);
    assert_eq!(s.verify_audit().unwrap().unwrap_err().seq, 3);
}

fn concurrent_appenders_never_fork_the_chain(fx: &Fx) {
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let loc = fx.locator();
            let kind = fx.kind;
            std::thread::spawn(move || {
                let s = open_kind(kind, &loc);
                for i in 0..50 {
                    s.append_audit(entry(w * 1000 + i)).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    assert_eq!(fx.reopen().verify_audit().unwrap(), Ok(200));
}

fn concurrent_permission_changes_all_apply_and_chain(fx: &Fx) {
    // Each thread owns one kind, interleaved with plain appends: every change must land
    // (none lost to a concurrent writer) and the chain must hold.
    let kinds = [
        ActionKind::SendEmail,
        ActionKind::PostSlack,
        ActionKind::ScheduleMeeting,
        ActionKind::CreateDeal,
    ];
    let threads: Vec<_> = kinds
        .into_iter()
        .enumerate()
        .map(|(w, kind)| {
            let loc = fx.locator();
            let bk = fx.kind;
            std::thread::spawn(move || {
                let s = open_kind(bk, &loc);
                for i in 0..10 {
                    let level = if i % 2 == 0 {
                        Autonomy::Ciba
                    } else {
                        Autonomy::StepUp
                    };
                    s.change_permissions(
                        &PermissionChange::SetAutonomy { kind, level },
                        entry(w as i64 * 100 + i),
                    )
                    .unwrap();
                    s.append_audit(entry(-1)).unwrap();
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let s = fx.reopen();
    let p = s.load_permissions().unwrap();
    for k in kinds {
        assert_eq!(p.autonomy_for(k), Autonomy::StepUp, "{k}");
    }
    assert_eq!(s.verify_audit().unwrap(), Ok(80));
}

/// Child half of the two-process test: claims every approved action it can and writes
/// the ids it won to the file named by DEALFLOW_TEST_CLAIMS.
#[test]
#[ignore = "child process of two_processes_execute_each_action_once; it runs it"]
fn helper_two_process_claimer() {
    let var =
        |k: &str| std::env::var(k).expect("started by two_processes_execute_each_action_once");
    let (kind, store, out) = (
        var("DEALFLOW_TEST_BACKEND"),
        var("DEALFLOW_TEST_STORE"),
        var("DEALFLOW_TEST_CLAIMS"),
    );
    let kind = if kind == "redis" {
        Kind::Redis
    } else {
        Kind::Sqlite
    };
    let s = open_kind(kind, &store);
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

fn two_processes_execute_each_action_once(fx: &Fx) {
    let s = fx.s();
    let n = 400;
    for i in 0..n {
        s.insert_action(&action(&format!("a{i:04}"), ActionState::Approved))
            .unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let backend = match fx.kind {
        Kind::Sqlite => "sqlite",
        Kind::Redis => "redis",
    };
    let children: Vec<_> = (0..2)
        .map(|k| {
            let claims = fx.dir.path().join(format!("claims{k}"));
            let child = std::process::Command::new(&exe)
                .args([
                    "helper_two_process_claimer",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("DEALFLOW_TEST_BACKEND", backend)
                .env("DEALFLOW_TEST_STORE", fx.locator())
                .env("DEALFLOW_TEST_CLAIMS", &claims)
                .spawn()
                .unwrap();
            (child, claims)
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(fx.dir.path().join("go"), "").unwrap();
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
    eprintln!("{backend}: claims per process: {per_child:?}");
}

// ---- Backend-specific ----

#[test]
fn sqlite_file_is_private_and_in_wal_mode() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fx::new(Kind::Sqlite);
    fx.s().append_audit(entry(1)).unwrap();
    let dir = fx.dir.path();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("nested/dir/store.db")), 0o600);
    assert_eq!(mode(&dir.join("nested/dir")), 0o700);
    let wal = dir.join("nested/dir/store.db-wal");
    assert!(wal.exists(), "WAL mode keeps a -wal file while open");
    assert_eq!(mode(&wal) & 0o077, 0, "the WAL is as private as the store");
}

#[test]
fn redis_namespaces_isolate_users() {
    let a = Fx::new(Kind::Redis);
    let b = Fx::new(Kind::Redis);
    a.s()
        .insert_action(&action("a1", ActionState::Approved))
        .unwrap();
    a.s().append_audit(entry(1)).unwrap();
    a.s()
        .change_permissions(
            &PermissionChange::SetAutonomy {
                kind: ActionKind::PostSlack,
                level: Autonomy::Deny,
            },
            entry(2),
        )
        .unwrap();
    // B sees none of A's actions, audit or permissions...
    assert!(matches!(
        b.s().get_action("a1"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(
        b.s()
            .list_actions(&ActionFilter::default())
            .unwrap()
            .is_empty()
    );
    assert_eq!(b.s().audit_head().unwrap().0, 0);
    assert_eq!(b.s().load_permissions().unwrap(), Default::default());
    // ...and cannot move or edit them.
    assert!(matches!(
        b.s()
            .transition("a1", &t(ActionState::Approved, 1, ActionState::Executing)),
        Err(StoreError::NotFound { .. })
    ));
    let p = ActionParams::PostSlack {
        channel: "#x".into(),
        text: "hijack".into(),
    };
    assert!(matches!(
        b.s().edit_action("a1", 1, &p, 3),
        Err(StoreError::NotFound { .. })
    ));
    // B inserting the same id makes B's own action, leaving A's untouched.
    b.s()
        .insert_action(&action("a1", ActionState::Proposed))
        .unwrap();
    let mine = a.s().get_action("a1").unwrap();
    assert_eq!((mine.state, mine.version), (ActionState::Approved, 1));
    assert_eq!(a.s().verify_audit().unwrap(), Ok(2));
    // A namespace that extends another's key prefix does not alias its keys.
    let tricky = open_redis(&format!("{}:audit", a.ns), None).unwrap();
    assert_eq!(tricky.audit_head().unwrap().0, 0);
    tricky.append_audit(entry(3)).unwrap();
    assert_eq!(a.s().verify_audit().unwrap(), Ok(2));
    tricky.purge_namespace().unwrap();
    assert_eq!(
        a.s().verify_audit().unwrap(),
        Ok(2),
        "purging it left A alone"
    );
    // Namespaces cannot be globs or hash-tag breakers that would reach other users' keys.
    assert!(open_redis("*", None).is_err());
    assert!(open_redis("a}b", None).is_err());
    assert!(open_redis("", None).is_err());
}

#[test]
fn redis_purge_removes_every_key_of_the_namespace() {
    let fx = Fx::new(Kind::Redis);
    demo::seed(fx.s(), 1).unwrap();
    let r = open_redis(&fx.ns, None).unwrap();
    assert!(r.health().unwrap().keys_in_namespace > 3);
    assert!(r.purge_namespace().unwrap() > 3);
    assert_eq!(r.health().unwrap().keys_in_namespace, 0);
}

#[test]
fn redis_team_policy_tightens_but_never_loosens() {
    let ns = unique_namespace("team-user");
    let team = unique_namespace("team");
    let s = open_redis(&ns, Some(&team)).unwrap();
    let mut policy = dealflow::core::permissions::Permissions {
        step_up_amount_cents: 1_000_000,
        ..Default::default()
    };
    policy
        .autonomy
        .insert(ActionKind::PostSlack, Autonomy::Ciba);
    s.init_team(entry(0)).unwrap();
    s.set_team_policy(&policy, entry(1)).unwrap();
    // The user loosens Slack to auto and raises the threshold: the team's floor holds.
    s.change_permissions(
        &PermissionChange::SetAutonomy {
            kind: ActionKind::PostSlack,
            level: Autonomy::Auto,
        },
        entry(2),
    )
    .unwrap();
    let (eff, _) = s
        .change_permissions(
            &PermissionChange::SetStepUpThreshold { cents: 9_000_000 },
            entry(3),
        )
        .unwrap();
    assert_eq!(eff.autonomy_for(ActionKind::PostSlack), Autonomy::Ciba);
    assert_eq!(eff.step_up_amount_cents, 1_000_000);
    assert_eq!(s.load_permissions().unwrap(), eff);
    // Tightening beyond the team works.
    s.change_permissions(
        &PermissionChange::SetAutonomy {
            kind: ActionKind::SendEmail,
            level: Autonomy::Deny,
        },
        entry(4),
    )
    .unwrap();
    assert_eq!(
        s.load_permissions()
            .unwrap()
            .autonomy_for(ActionKind::SendEmail),
        Autonomy::Deny
    );
    // The user's own set still records what they chose.
    assert_eq!(
        s.own_permissions()
            .unwrap()
            .autonomy_for(ActionKind::PostSlack),
        Autonomy::Auto
    );
    assert_eq!(s.verify_audit().unwrap(), Ok(4));
    // The team's own stream: created, then the policy set, by this user.
    assert_eq!(s.verify_team_audit().unwrap(), Ok(2));
    let t = s.team_audit_page(0, 10).unwrap();
    assert_eq!(t[1].event, entry(1).event);
    assert_eq!(t[1].detail["team"], team.as_str());
    s.purge_namespace().unwrap();
    assert_eq!(s.purge_team().unwrap(), 3);
}

/// Only the team's admins change its policy; the stream is one chain however many
/// members append at once, and cutting its last entry is a break, not a shorter log.
#[test]
fn redis_team_policy_is_for_admins_and_its_stream_chains() {
    let team = unique_namespace("team");
    let admin = open_redis(&unique_namespace("adm"), Some(&team)).unwrap();
    let member = open_redis(&unique_namespace("mem"), Some(&team)).unwrap();
    let policy = dealflow::core::permissions::Permissions::default();
    // No team yet: nobody changes its policy, and it says what to do.
    let e = member.set_team_policy(&policy, entry(1)).unwrap_err();
    assert!(e.to_string().contains("team init"), "{e}");
    admin.init_team(entry(0)).unwrap();
    let e = admin.init_team(entry(0)).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = member.set_team_policy(&policy, entry(1)).unwrap_err();
    assert!(e.to_string().contains("only an admin"), "{e}");
    let e = member.clear_team_policy(entry(1)).unwrap_err();
    assert!(e.to_string().contains("only an admin"), "{e}");
    assert_eq!(member.team_policy().unwrap(), None);
    admin.set_team_policy(&policy, entry(1)).unwrap();
    assert_eq!(member.team_policy().unwrap(), Some(policy));

    std::thread::scope(|sc| {
        for s in [&admin, &member] {
            sc.spawn(move || {
                for i in 0..20 {
                    s.append_team_audit(entry(i)).unwrap();
                }
            });
        }
    });
    assert_eq!(member.verify_team_audit().unwrap(), Ok(42));
    let mut c = raw_redis();
    let stream = format!("dealflow:t:{{{team}}}:audit");
    let _: i64 = ::redis::cmd("XDEL")
        .arg(&stream)
        .arg("42-0")
        .query(&mut c)
        .unwrap();
    let broken = member.verify_team_audit().unwrap().unwrap_err();
    assert_eq!(broken.seq, 42, "{broken:?}");
    admin.purge_namespace().unwrap();
    member.purge_namespace().unwrap();
    admin.purge_team().unwrap();
}

#[test]
fn redis_store_is_safe_from_spawn_blocking_and_inside_a_runtime() {
    // The trait is synchronous and async code calls it through spawn_blocking; the
    // blocking connection needs no runtime, so calling it on a runtime thread must not
    // panic either (unlike a block_on-based adapter would).
    let fx = Fx::new(Kind::Redis);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::from(fx.reopen());
    let n = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = store.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                s.append_audit(entry(i)).unwrap().seq
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        // Directly on a runtime worker thread too.
        store.append_audit(entry(99)).unwrap();
        seqs.sort();
        seqs
    });
    assert_eq!(n, (1..=8).collect::<Vec<i64>>());
    assert_eq!(fx.s().verify_audit().unwrap(), Ok(9));
}

/// Any float in an audit detail survives the store's text round trip exactly, so the
/// chain still verifies (serde_json needs `float_roundtrip` for that).
#[test]
fn float_details_keep_the_chain_intact() {
    use proptest::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("f.db")).unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    runner
        .run(
            &(
                any::<f64>().prop_filter("finite", |f| f.is_finite()),
                0.0f64..1.0,
            ),
            |(a, b)| {
                s.append_audit(NewAuditEntry {
                    ts: 1,
                    actor: "user:t".into(),
                    surface: None,
                    event: "test.float".into(),
                    action_id: None,
                    outcome: "ok".into(),
                    detail: serde_json::json!({ "edit_size": b, "x": a }),
                })
                .unwrap();
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(s.verify_audit().unwrap(), Ok(300));
}

/// The change marker the suggestion engine polls: it moves on this connection's commits
/// and on another process's, and stays put otherwise.
#[test]
fn the_sqlite_change_marker_moves_on_every_commit_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let a = dealflow::store::SqliteStore::open(&path).unwrap();
    let b = dealflow::store::SqliteStore::open(&path).unwrap();
    dealflow::sandbox::demo::seed(&a, 0).unwrap();
    let m0 = a.change_marker().unwrap();
    assert_eq!(a.change_marker(), Some(m0), "nothing committed");
    let mut d = a.list_deals().unwrap()[0].clone();
    d.notes = "touched here".into();
    a.upsert_deal(&d).unwrap();
    let m1 = a.change_marker().unwrap();
    assert_ne!(m1, m0, "own commit");
    d.notes = "touched by another process".into();
    b.upsert_deal(&d).unwrap();
    assert_ne!(
        a.change_marker().unwrap(),
        m1,
        "another connection's commit"
    );
}

/// A lease left by a worker that was killed (a process on this host that no longer
/// runs) is taken over at once rather than blocking the next worker until it lapses;
/// one held by a live process is not.
#[test]
fn a_dead_holders_lease_is_taken_over_and_a_live_ones_is_not() {
    use dealflow::store::lease;
    let fx = Fx::new(Kind::Sqlite);
    let s = fx.s();
    let host = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        // The holder string as a worker writes it (runtime::lease_holder), for a pid
        // that has exited.
        let me = dealflow::runtime::lease_holder();
        let host = me
            .split(" on ")
            .nth(1)
            .unwrap()
            .rsplit_once(" #")
            .unwrap()
            .0
            .to_string();
        s.take_lease(
            lease::BATCH,
            &format!("pid {pid} on {host} #1"),
            0,
            1_000_000,
        )
        .unwrap()
        .unwrap();
        host
    };
    assert_eq!(
        dealflow::runtime::take_lease(s, lease::BATCH, "next", 10, 100).unwrap(),
        Ok(())
    );
    // A live holder (this test process) keeps it; so does one on another host.
    let live = format!("pid {} on {host} #9", std::process::id());
    s.take_lease(lease::SUGGEST, &live, 0, 1_000_000)
        .unwrap()
        .unwrap();
    assert!(
        dealflow::runtime::take_lease(s, lease::SUGGEST, "next", 10, 100)
            .unwrap()
            .is_err()
    );
    s.release_lease(lease::SUGGEST, &live).unwrap();
    s.take_lease(
        lease::SUGGEST,
        "pid 1 on elsewhere.example #1",
        0,
        1_000_000,
    )
    .unwrap()
    .unwrap();
    assert!(
        dealflow::runtime::take_lease(s, lease::SUGGEST, "next", 10, 100)
            .unwrap()
            .is_err()
    );
}

/// SQLite verifies a long log in batches hashed on every core: it must report the same
/// first break a one-row-at-a-time walk would — an altered row before a later broken
/// link, a removed row, an altered row past the first batch — and pass an intact log.
#[test]
fn sqlite_verifies_a_long_log_on_every_core_with_the_first_break_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("long.db");
    let s = SqliteStore::open(&db).unwrap();
    // More than one batch (8192 rows), so batch edges are crossed.
    let n = 9_000;
    for i in 1..=n {
        s.append_audit(entry(i)).unwrap();
    }
    assert_eq!(s.verify_audit().unwrap(), Ok(n));
    let sql = |q: &str| {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(q)
            .unwrap()
    };
    let first_break = |s: &SqliteStore| s.verify_audit().unwrap().unwrap_err();

    // An altered row in the second batch.
    sql("UPDATE audit SET detail = '{\"n\":-1}' WHERE seq = 8500");
    let b = first_break(&s);
    assert_eq!(b.seq, 8500, "{b:?}");
    assert!(b.problem.contains("content does not match"), "{b:?}");
    // An altered row earlier in the first batch wins over a later removed row.
    sql(
        "UPDATE audit SET actor = 'user:mallory' WHERE seq = 2100; DELETE FROM audit WHERE seq = 2500",
    );
    let b = first_break(&s);
    assert_eq!(b.seq, 2100, "{b:?}");
    // Put 2100 back as it was: now the removed row is the first break.
    sql("UPDATE audit SET actor = 'user:test' WHERE seq = 2100");
    let b = first_break(&s);
    assert_eq!(b.seq, 2500, "{b:?}");
    assert!(b.problem.contains("missing"), "{b:?}");
}

/// A log long enough to be checked a range per core: the ranges join up, and a break
/// anywhere — inside a range, at the first or last row of one, a row gone at a boundary,
/// two breaks at once — is reported as the one a walk from the first row meets.
#[test]
fn a_long_log_is_verified_on_every_core_with_the_same_first_break() {
    use dealflow::core::audit::{GENESIS, seal};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.db");
    let s = SqliteStore::open(&path).unwrap();
    let n = 30_000i64;
    let mut c = rusqlite::Connection::open(&path).unwrap();
    let tx = c.transaction().unwrap();
    let mut prev = GENESIS.to_string();
    let mut rows = Vec::new();
    for seq in 1..=n {
        let e = seal(
            seq,
            &prev,
            NewAuditEntry {
                ts: seq,
                actor: "user:ana".into(),
                surface: Some(Surface::ActionCenter),
                event: "action.approved".into(),
                action_id: Some(format!("act-{seq}")),
                outcome: "ok".into(),
                detail: serde_json::json!({"kind": "send_email", "n": seq}),
            },
        );
        prev = e.hash.clone();
        insert_sealed(&tx, &e);
        rows.push(e);
    }
    tx.execute(
        "INSERT OR REPLACE INTO audit_head (id, count, hash) VALUES (1, ?1, ?2)",
        rusqlite::params![n, prev],
    )
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(s.verify_audit().unwrap(), Ok(n));

    let tamper = |seq: i64, outcome: &str| {
        c.execute(
            "UPDATE audit SET outcome = ?1 WHERE seq = ?2",
            rusqlite::params![outcome, seq],
        )
        .unwrap();
    };
    // With two cores the ranges meet between 15,000 and 15,001.
    for seq in [1, 2, 14_999, 15_000, 15_001, 15_002, 29_999, 30_000] {
        tamper(seq, "denied");
        assert_eq!(s.verify_audit().unwrap().unwrap_err().seq, seq, "#{seq}");
        tamper(seq, "ok");
    }
    // Two breaks: the earlier one is reported, whichever range finds it.
    tamper(5, "denied");
    tamper(20_000, "denied");
    assert_eq!(s.verify_audit().unwrap().unwrap_err().seq, 5);
    tamper(5, "ok");
    assert_eq!(s.verify_audit().unwrap().unwrap_err().seq, 20_000);
    tamper(20_000, "ok");
    // A row gone at the boundary: the walk misses it where it should have been.
    let gone = &rows[15_000];
    assert_eq!(gone.seq, 15_001);
    c.execute("DELETE FROM audit WHERE seq = 15001", [])
        .unwrap();
    let b = s.verify_audit().unwrap().unwrap_err();
    assert_eq!(b.seq, 15_001, "{b}");
    // A row that links to the wrong predecessor at the first row of a range.
    insert_sealed(&c, gone);
    assert_eq!(s.verify_audit().unwrap(), Ok(n));
    c.execute(
        "UPDATE audit SET prev_hash = ?1 WHERE seq = 15001",
        [&"0".repeat(64)],
    )
    .unwrap();
    assert_eq!(s.verify_audit().unwrap().unwrap_err().seq, 15_001);
}

/// A log kept in the old layout (a sorted set scored by seq, and its recorded head) is
/// moved into the stream by the first open, in order, verifies as before, and the next
/// append chains on; an entry that had been deleted from the end of the old log is
/// still missed after the move.
#[test]
fn redis_old_audit_layout_moves_into_the_stream_on_open() {
    use dealflow::core::audit::{GENESIS, seal};
    let old_layout = |ns: &str, n: i64, recorded: i64| {
        let mut c = raw_redis();
        let prefix = format!("dealflow:u:{{{ns}}}:");
        let mut prev = GENESIS.to_string();
        let mut last = String::new();
        for i in 0..n {
            let e = seal(i + 1, &prev, entry(i));
            let _: () = ::redis::cmd("ZADD")
                .arg(format!("{prefix}audit"))
                .arg(e.seq)
                .arg(serde_json::to_string(&e).unwrap())
                .query(&mut c)
                .unwrap();
            prev = e.hash.clone();
            last = e.hash;
        }
        let _: () = ::redis::cmd("HSET")
            .arg(format!("{prefix}audit:head"))
            .arg("count")
            .arg(recorded)
            .arg("hash")
            .arg(last)
            .query(&mut c)
            .unwrap();
    };
    let ns = unique_namespace("migrate");
    old_layout(&ns, 5, 5);
    let s = open_redis(&ns, None).unwrap();
    assert_eq!(s.verify_audit().unwrap().unwrap(), 5);
    let mut c = raw_redis();
    let kind: String = ::redis::cmd("TYPE")
        .arg(format!("dealflow:u:{{{ns}}}:audit:log"))
        .query(&mut c)
        .unwrap();
    assert_eq!(kind, "stream");
    let left: i64 = ::redis::cmd("EXISTS")
        .arg(format!("dealflow:u:{{{ns}}}:audit"))
        .arg(format!("dealflow:u:{{{ns}}}:audit:head"))
        .query(&mut c)
        .unwrap();
    assert_eq!(left, 0, "the old keys are gone once moved");
    let sixth = s.append_audit(entry(5)).unwrap();
    assert_eq!(sixth.seq, 6);
    assert_eq!(s.verify_audit().unwrap().unwrap(), 6);
    // Opening again moves nothing and changes nothing.
    let again = open_redis(&ns, None).unwrap();
    assert_eq!(again.verify_audit().unwrap().unwrap(), 6);
    // An older dealflow writing the old layout beside the stream: set aside, not
    // spliced, and verify says so; the stream itself is untouched.
    old_layout(&ns, 1, 1);
    let reopened = open_redis(&ns, None).unwrap();
    let broken = reopened.verify_audit().unwrap().unwrap_err();
    assert!(broken.problem.contains("set aside"), "{broken:?}");
    assert_eq!(broken.seq, 7);
    assert_eq!(reopened.audit_head().unwrap().0, 6);
    let _ = again.purge_namespace();

    // Only the recorded head is left (the log itself deleted): the loss stays visible.
    let ns = unique_namespace("migrate-gone");
    old_layout(&ns, 0, 5);
    let s = open_redis(&ns, None).unwrap();
    assert!(s.verify_audit().unwrap().is_err());
    assert_eq!(s.append_audit(entry(1)).unwrap().seq, 6);
    let _ = s.purge_namespace();

    // A namespace adopted from before verified identities, still in the old layout: its
    // log arrives as a stream, and the adoption chains onto it.
    let legacy = unique_namespace("legacy");
    old_layout(&legacy, 3, 3);
    let ns = unique_namespace("adopter");
    let s = open_redis(&ns, None).unwrap();
    let adopted = s.adopt_legacy(&legacy, entry(7)).unwrap();
    assert!(
        matches!(adopted, dealflow::store::redis::Adoption::Moved { .. }),
        "{adopted:?}"
    );
    assert_eq!(s.verify_audit().unwrap().unwrap(), 4);
    let again = open_redis(&ns, None).unwrap();
    assert_eq!(again.verify_audit().unwrap().unwrap(), 4);
    let _ = again.purge_namespace();

    // The old head recorded 4 entries but only 3 are there: the missing one stays missed.
    let ns = unique_namespace("migrate-cut");
    old_layout(&ns, 3, 4);
    let s = open_redis(&ns, None).unwrap();
    let broken = s.verify_audit().unwrap();
    assert!(
        broken.is_err(),
        "a log cut short before the move verified: {broken:?}"
    );
    assert_eq!(s.append_audit(entry(9)).unwrap().seq, 5, "no seq is reused");
    let _ = s.purge_namespace();
}

/// What the stream adds over a scripted compare-and-set: an entry deleted from the end
/// is a break (the stream's top stays), its seq is never reused, and an appender whose
/// head is stale is refused by Redis itself and chains on the real head.
#[test]
fn redis_stream_refuses_a_stale_head_and_keeps_its_top() {
    let ns = unique_namespace("stream-top");
    let a = open_redis(&ns, None).unwrap();
    let b = open_redis(&ns, None).unwrap();
    for i in 0..3 {
        a.append_audit(entry(i)).unwrap();
    }
    // b has not read the head yet; a moves it on; b's first append seals on what it reads.
    b.append_audit(entry(3)).unwrap();
    // a's cached head is now stale (#3): Redis refuses #4 and a reseals as #5.
    assert_eq!(a.append_audit(entry(4)).unwrap().seq, 5);
    assert_eq!(a.verify_audit().unwrap().unwrap(), 5);
    let mut c = raw_redis();
    let _: i64 = ::redis::cmd("XDEL")
        .arg(format!("dealflow:u:{{{ns}}}:audit:log"))
        .arg("5-0")
        .query(&mut c)
        .unwrap();
    let fresh = open_redis(&ns, None).unwrap();
    assert!(
        fresh.verify_audit().unwrap().is_err(),
        "the newest entry deleted must be a break"
    );
    assert_eq!(
        fresh.append_audit(entry(5)).unwrap().seq,
        6,
        "#5 is not reused"
    );
    // The key deleted whole under a writer with a cached head: it does not start a new
    // stream at #7 (a chain with no beginning) but reads the head and starts at #1.
    let _: i64 = ::redis::cmd("DEL")
        .arg(format!("dealflow:u:{{{ns}}}:audit:log"))
        .query(&mut c)
        .unwrap();
    assert_eq!(fresh.append_audit(entry(6)).unwrap().seq, 1);
    let _ = fresh.purge_namespace();
}
