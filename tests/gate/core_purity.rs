//! `src/core` must stay pure: no IO, no clocks, no async runtime, no UI. This scans its
//! source for the names that would mean otherwise.

#![allow(clippy::unwrap_used)]

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "reqwest",
    "ratatui",
    "crossterm",
    "rusqlite",
    "redis",
    "keyring",
    "std::fs",
    "fs::",
    "std::net",
    "std::process",
    "std::env",
    "std::thread",
    "std::io",
    "SystemTime",
    "Instant::now",
    "include_str!",
    "include_bytes!",
];

/// Returns "file:line: `name`" for each forbidden name in code (comments skipped).
fn violations(file: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for name in FORBIDDEN {
            if code.contains(name) {
                out.push(format!("{file}:{}: `{name}`", i + 1));
            }
        }
    }
    out
}

fn scan(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read src/core") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            scan(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            out.extend(violations(&path.display().to_string(), &text));
        }
    }
}

#[test]
fn core_does_no_io() {
    let mut found = Vec::new();
    scan(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core"),
        &mut found,
    );
    assert!(found.is_empty(), "IO in src/core:\n{}", found.join("\n"));
}

#[test]
fn the_check_catches_io_added_to_core() {
    let sneaky = "use std::fs::File;\nfn f() { let _ = tokio::spawn(async {}); }\n// std::fs in a comment is fine\n";
    let found = violations("core/x.rs", sneaky);
    assert!(
        found
            .iter()
            .any(|v| v.contains("core/x.rs:1") && v.contains("std::fs"))
    );
    assert!(
        found
            .iter()
            .any(|v| v.contains("core/x.rs:2") && v.contains("tokio"))
    );
    assert!(!found.iter().any(|v| v.contains("core/x.rs:3")));
}

#[test]
fn core_manifest_dependencies_are_pure_crates() {
    // The crates core imports must be computation-only.
    let mut used = std::collections::BTreeSet::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                if let Some(rest) = line.trim().strip_prefix("use ") {
                    let krate = rest.split("::").next().unwrap_or("").trim_end_matches(';');
                    used.insert(krate.to_string());
                }
            }
        }
    }
    let allowed = [
        "super",
        "crate",
        "self",
        "std",
        "serde",
        "serde_json",
        "sha2",
        "hex",
        "itoa",
        "thiserror",
        // Property tests inside core's own test modules.
        "proptest",
    ];
    let extra: Vec<_> = used
        .iter()
        .filter(|u| !u.starts_with(char::is_uppercase) && !allowed.contains(&u.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "src/core imports crates outside the pure set: {extra:?}"
    );
}
