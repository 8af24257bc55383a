//! Fuzzing with proptest (stable toolchain): arbitrary JSON into the tool-input parser
//! the MCP call path and the chat agent use, arbitrary TOML-ish text into config
//! parsing, and garbled audit rows into chain verification, both in memory and in a
//! real SQLite store. The property everywhere: no panic, and garbage is refused.

#![allow(clippy::unwrap_used)]

use dealflow::config::{Config, Override, Source};
use dealflow::core::audit::{AuditEntry, ChainVerifier, NewAuditEntry, seal};
use dealflow::core::domain::{ActionKind, Surface};
use dealflow::store::{SqliteStore, Store};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::Path;

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        // Plausible values: addresses, times, channels, amounts.
        prop_oneof![
            Just(json!("bill@initech.example")),
            Just(json!("#deals")),
            Just(json!("2026-01-01T10:00:00Z")),
            Just(json!(-1)),
            Just(json!(u64::MAX)),
            Just(json!(1e300)),
            Just(json!("")),
        ],
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("to".to_string()),
                    Just("cc".to_string()),
                    Just("subject".to_string()),
                    Just("body".to_string()),
                    Just("deal_id".to_string()),
                    Just("title".to_string()),
                    Just("attendees".to_string()),
                    Just("start".to_string()),
                    Just("end".to_string()),
                    Just("from".to_string()),
                    Just("channel".to_string()),
                    Just("text".to_string()),
                    // The keys the tools read (`amount_cents`, not `amount`: with the
                    // wrong name create_deal and close_deal almost never parsed).
                    Just("amount_cents".to_string()),
                    Just("won".to_string()),
                    Just("fields".to_string()),
                    Just("notes".to_string()),
                    Just("since".to_string()),
                    Just("query".to_string()),
                    Just("description".to_string()),
                    Just("stage".to_string()),
                    Just("name".to_string()),
                    Just("account".to_string()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Every tool, any JSON: a parsed action or a message, never a panic; what parses
    /// either validates or says why not.
    #[test]
    fn tool_input_never_panics(input in arb_json(), k in 0..ActionKind::ALL.len()) {
        let kind = ActionKind::ALL[k];
        match dealflow::agent::tools::params_for(kind, &input) {
            Ok(params) => {
                prop_assert_eq!(params.kind(), kind);
                // What the parser hands on is valid: nothing invalid reaches the gate.
                prop_assert_eq!(params.validate(), Ok(()));
                let _ = params.target();
                // What is approved is what re-parses: the payload survives its own
                // serialization unchanged, so the digest consent binds to is stable.
                let mut again = serde_json::to_value(&params).unwrap();
                again.as_object_mut().unwrap().remove("kind");
                let reparsed = dealflow::agent::tools::params_for(kind, &again).unwrap();
                prop_assert_eq!(
                    dealflow::core::consent::payload_digest(&reparsed),
                    dealflow::core::consent::payload_digest(&params)
                );
                prop_assert_eq!(reparsed, params);
            }
            // A refusal always says something the model or the MCP client can act on.
            Err(why) => prop_assert!(!why.trim().is_empty(), "empty refusal for {input}"),
        }
        let _ = dealflow::mcp::tools::kind_of(&input.to_string());
    }
}

fn toml_line() -> impl Strategy<Value = String> {
    let section = prop_oneof![
        Just("[store]".to_string()),
        Just("[auth0]".to_string()),
        Just("[llm]".to_string()),
        Just("[ui]".to_string()),
        Just("[sandbox]".to_string()),
        Just("[[store]]".to_string()),
        "\\[[a-z.]{0,12}\\]?",
    ];
    let key = prop_oneof![
        Just("url"),
        Just("team"),
        Just("domain"),
        Just("client_id"),
        Just("model"),
        Just("api_key"),
        Just("theme"),
        Just("port"),
        Just("namespace"),
        Just("base_url"),
    ];
    let value = prop_oneof![
        Just("\"redis://127.0.0.1:6379\"".to_string()),
        Just("\"sqlite:///tmp/x.db\"".to_string()),
        Just("\"\"".to_string()),
        Just("42".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999".to_string()),
        Just("true".to_string()),
        Just("[1, \"a\"]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("\"unterminated".to_string()),
        Just("'''multi".to_string()),
        ".{0,20}",
    ];
    prop_oneof![
        section,
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        ".{0,30}",
        Just(String::new()),
        Just("# comment".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// Config text and overrides of any shape: a config or an error, never a panic.
    #[test]
    fn config_parsing_never_panics(
        lines in prop::collection::vec(toml_line(), 0..12),
        over in prop::option::of(("[a-z]{1,8}", "[a-z_]{1,10}", ".{0,20}")),
    ) {
        let text = lines.join("\n");
        let overrides: Vec<Override> = over
            .into_iter()
            .map(|(section, key, value)| Override {
                section,
                key,
                value,
                source: Source::Flag("--set".into()),
            })
            .collect();
        match Config::from_parts(Some((Path::new("/tmp/fuzz.toml"), &text)), &overrides) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        let _ = Config::from_parts(None, &overrides);
    }
}

fn chain(n: usize) -> Vec<AuditEntry> {
    let mut prev = "0".repeat(64);
    let mut out = Vec::new();
    for i in 0..n {
        let e = seal(
            i as i64 + 1,
            &prev,
            NewAuditEntry {
                ts: 1_000 + i as i64,
                actor: "user:tester".into(),
                surface: Some(Surface::ActionCenter),
                event: "action.approved".into(),
                action_id: Some(format!("act-{i}")),
                outcome: "ok".into(),
                detail: json!({ "n": i }),
            },
        );
        prev = e.hash.clone();
        out.push(e);
    }
    out
}

#[derive(Debug, Clone)]
enum Garble {
    Seq(usize, i64),
    Actor(usize, String),
    Detail(usize, Value),
    Hash(usize, String),
    Prev(usize, String),
    Drop(usize),
    Swap(usize, usize),
    Dup(usize),
}

fn arb_garble() -> impl Strategy<Value = Garble> {
    prop_oneof![
        (any::<usize>(), any::<i64>()).prop_map(|(i, s)| Garble::Seq(i, s)),
        (any::<usize>(), ".{0,12}").prop_map(|(i, s)| Garble::Actor(i, s)),
        (any::<usize>(), arb_json()).prop_map(|(i, v)| Garble::Detail(i, v)),
        (any::<usize>(), ".{0,70}").prop_map(|(i, s)| Garble::Hash(i, s)),
        (any::<usize>(), ".{0,70}").prop_map(|(i, s)| Garble::Prev(i, s)),
        any::<usize>().prop_map(Garble::Drop),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Garble::Swap(a, b)),
        any::<usize>().prop_map(Garble::Dup),
    ]
}

fn apply(es: &mut Vec<AuditEntry>, g: &Garble) {
    let n = es.len();
    if n == 0 {
        return;
    }
    match g {
        Garble::Seq(i, s) => es[i % n].seq = *s,
        Garble::Actor(i, s) => es[i % n].actor = s.clone(),
        Garble::Detail(i, v) => es[i % n].detail = v.clone(),
        Garble::Hash(i, s) => es[i % n].hash = s.clone(),
        Garble::Prev(i, s) => es[i % n].prev_hash = s.clone(),
        Garble::Drop(i) => {
            es.remove(i % n);
        }
        Garble::Swap(a, b) => es.swap(a % n, b % n),
        Garble::Dup(i) => {
            let e = es[i % n].clone();
            es.insert(i % n, e);
        }
    }
}

fn verify(es: &[AuditEntry], count: i64, head: &str) -> Result<i64, String> {
    let mut v = ChainVerifier::default();
    for e in es {
        v.push(e).map_err(|b| b.problem)?;
    }
    v.finish(count, head).map_err(|b| b.problem)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// Garbled rows never panic the verifier, and any change to the chain is caught.
    #[test]
    fn garbled_audit_rows_are_caught(n in 1usize..12, garbles in prop::collection::vec(arb_garble(), 1..4)) {
        let good = chain(n);
        let (count, head) = (n as i64, good[n - 1].hash.clone());
        prop_assert_eq!(verify(&good, count, &head), Ok(count));
        let mut bad = good.clone();
        for g in &garbles {
            apply(&mut bad, g);
        }
        let result = verify(&bad, count, &head);
        if bad != good {
            prop_assert!(result.is_err(), "undetected: {:?}", garbles);
        }
        // Export and re-import as JSON lines, with garbage lines mixed in: parsing
        // refuses or yields entries the verifier judges; nothing panics.
        for e in &bad {
            let line = serde_json::to_string(e).unwrap();
            let back: AuditEntry = serde_json::from_str(&line).unwrap();
            prop_assert_eq!(&back, e);
            let cut: String = line.chars().take(line.chars().count() / 2).collect();
            prop_assert!(serde_json::from_str::<AuditEntry>(&cut).is_err());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, ..ProptestConfig::default() })]

    /// The same, in a real SQLite store: rows garbled with SQL (including columns that no
    /// longer hold JSON) make `verify_audit` and paging report, not panic.
    #[test]
    fn garbled_sqlite_audit_rows_are_reported(
        col in prop_oneof![
            Just("actor"), Just("event"), Just("outcome"), Just("detail"),
            Just("prev_hash"), Just("hash"), Just("surface"), Just("ts"), Just("seq"),
        ],
        row in 1i64..6,
        value in prop_oneof![
            ".{0,20}".prop_map(Value::String),
            any::<i64>().prop_map(|n| json!(n)),
            Just(Value::Null),
        ],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let s = SqliteStore::open(&db).unwrap();
        for e in chain(5) {
            s.append_audit(e.unsealed()).unwrap();
        }
        prop_assert_eq!(s.verify_audit().unwrap(), Ok(5));
        let conn = rusqlite::Connection::open(&db).unwrap();
        let sql = format!("UPDATE audit SET {col} = ?1 WHERE seq = ?2");
        let changed = match &value {
            Value::String(t) => conn.execute(&sql, rusqlite::params![t, row]),
            Value::Number(n) => conn.execute(&sql, rusqlite::params![n.as_i64(), row]),
            _ => conn.execute(&sql, rusqlite::params![Option::<String>::None, row]),
        };
        drop(conn);
        let verdict = s.verify_audit();
        let _ = s.audit_page(0, 100);
        if let Ok(n) = changed
            && n == 1
        {
            // Something changed: unless it was set to what it already held, it is caught.
            let original = chain(5);
            let e = &original[(row - 1) as usize];
            let same = match (col, &value) {
                ("actor", Value::String(t)) => *t == e.actor,
                ("event", Value::String(t)) => *t == e.event,
                ("outcome", Value::String(t)) => *t == e.outcome,
                ("prev_hash", Value::String(t)) => *t == e.prev_hash,
                ("hash", Value::String(t)) => *t == e.hash,
                ("ts", Value::Number(n)) => n.as_i64() == Some(e.ts),
                ("seq", Value::Number(n)) => n.as_i64() == Some(e.seq),
                _ => false,
            };
            if !same {
                prop_assert!(!matches!(verdict, Ok(Ok(_))), "{col}={value} at #{row} undetected: {verdict:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 800, ..ProptestConfig::default() })]

    /// Any value for any duration key: an error naming the key, or a duration every
    /// clock in dealflow can add (a u64::MAX "wait_bound" once panicked an MCP worker).
    #[test]
    fn every_duration_setting_is_bounded(
        key in prop::sample::select(vec![
            ("mcp", "wait_bound"), ("batch", "window"), ("ui", "idle_lock"),
            ("ui", "undo_send"), ("llm", "timeout"), ("agent", "suggest_every"),
        ]),
        n in prop_oneof![0u64..1_000, any::<u64>(), Just(u64::MAX)],
        unit in prop::sample::select(vec!["ms", "s", "m", "h", "d", "w", "x", ""]),
    ) {
        let text = format!("[{}]\n{} = \"{n}{unit}\"\n", key.0, key.1);
        match Config::from_parts(Some((Path::new("/tmp/fuzz.toml"), &text)), &[]) {
            Ok(c) => {
                for d in [c.mcp_wait_bound, c.batch_window, c.idle_lock, c.undo_send, c.suggest_every] {
                    prop_assert!(d <= dealflow::config::MAX_DURATION);
                    prop_assert!(std::time::Instant::now().checked_add(d).is_some());
                }
            }
            Err(e) => prop_assert!(e.to_string().contains(key.1), "{e}"),
        }
    }
}
