//! Dependencies point one way (see `src/lib.rs`): only the composition root (`cli`, and
//! `main.rs`) may reach the sandbox or the TUI. A path into either from anywhere else
//! would make production code build, and maybe run, on the emulator or the terminal UI.
//! Tests are exempt: `#[cfg(test)]` items are skipped, and `tests/` is not scanned.

#![allow(clippy::unwrap_used)]

use std::path::Path;

/// A top-level module and the only places (paths under the crate root) that may use it.
const RULES: &[(&str, &[&str])] = &[
    ("sandbox", &["src/sandbox/", "src/cli/", "src/main.rs"]),
    ("tui", &["src/tui/", "src/cli/", "src/main.rs"]),
    // The model never reaches into the view: what both need to know about the screen
    // (bands, splits, how much of a payload a box shows) is `tui::layout`.
    (
        "tui::view",
        &[
            "src/tui/view/",
            "src/tui/event_loop.rs",
            "src/tui/mod.rs",
            "src/cli/",
        ],
    ),
    ("tui::app", &["src/tui/", "src/cli/", "src/main.rs"]),
];

/// Modules the model's own files may not use (`tui::layout` and `tui::tab` are shared,
/// so must not lean on `app` either).
const MODEL_FREE: &[(&str, &str)] = &[
    ("src/tui/layout.rs", "tui::app"),
    ("src/tui/tab.rs", "tui::app"),
];

/// The file's code with comments blanked and `#[cfg(test)]` items removed, line numbers
/// kept (a skipped line stays as an empty line).
fn production_code(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Some(depth) while skipping a test item: its brace depth, and whether it has opened.
    let mut skipping: Option<(i64, bool)> = None;
    for line in text.lines() {
        // `//` inside a string cuts the line short: that can hide a path, never invent one.
        let code = line.split("//").next().unwrap_or("");
        if let Some((depth, opened)) = skipping.as_mut() {
            for c in code.chars() {
                match c {
                    '{' => {
                        *depth += 1;
                        *opened = true;
                    }
                    '}' => *depth -= 1,
                    _ => {}
                }
            }
            let done = *depth <= 0 && (*opened || code.trim_end().ends_with(';'));
            if done {
                skipping = None;
            }
            out.push(String::new());
            continue;
        }
        if code.trim() == "#[cfg(test)]" {
            skipping = Some((0, false));
            out.push(String::new());
            continue;
        }
        out.push(code.to_string());
    }
    out
}

/// The module path of a file under `src/`: `src/runtime/auth0.rs` is `runtime::auth0`,
/// `src/runtime/mod.rs` is `runtime`.
fn module_of(file: &str) -> Vec<String> {
    let rel = file.strip_prefix("src/").unwrap_or(file);
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The top-level modules that a path starting at byte `at` of `code` names: `crate::x`,
/// `super::super::x` resolved from `module`, or each item of a `crate::{a, b::c}` group.
fn roots_at(code: &str, at: usize, module: &[String]) -> Vec<String> {
    let rest = &code[at..];
    let (base, mut tail): (Vec<String>, &str) = if let Some(t) = rest.strip_prefix("crate::") {
        (Vec::new(), t)
    } else if rest.starts_with("super::") {
        let mut m = module.to_vec();
        let mut t = rest;
        while let Some(next) = t.strip_prefix("super::") {
            m.pop();
            t = next;
        }
        (m, t)
    } else {
        return Vec::new();
    };
    let mut items = Vec::new();
    if let Some(group) = tail.strip_prefix('{') {
        // Top-level items of the group only: `crate::{a::{b, c}, d}` names `a` and `d`.
        let mut depth = 0;
        let mut start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => start = true,
                c if start && is_ident(c) => {
                    let end = group[i..]
                        .find(|c| !is_ident(c))
                        .map_or(group.len(), |e| i + e);
                    items.push(group[i..end].to_string());
                    start = false;
                }
                _ => {}
            }
        }
    } else {
        tail = tail.trim_start();
        let end = tail.find(|c| !is_ident(c)).unwrap_or(tail.len());
        let mut item = tail[..end].to_string();
        // One level more: `crate::tui::view` names `tui::view`.
        if let Some(next) = tail[end..].strip_prefix("::") {
            let e = next.find(|c| !is_ident(c)).unwrap_or(next.len());
            if e > 0 {
                item = format!("{item}::{}", &next[..e]);
            }
        }
        items.push(item);
    }
    items
        .into_iter()
        .filter_map(|item| {
            let mut path = base.clone();
            path.extend(item.split("::").map(str::to_string));
            // Paths from the crate root: its top-level module and the one under it.
            (!path.is_empty()).then(|| path.into_iter().take(2).collect::<Vec<_>>().join("::"))
        })
        .collect()
}

/// Returns "file:line: `crate::module`" for each reference to a module `file` may not use.
fn violations(file: &str, text: &str) -> Vec<String> {
    let module = module_of(file);
    let lines = production_code(text);
    // Groups may span lines, so search the joined code and map offsets back to lines.
    let code = lines.join("\n");
    let mut out = Vec::new();
    for (at, _) in code.match_indices(['c', 's']) {
        // A path starts where no identifier or `::` runs into it (`$crate::` still counts).
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        for path in roots_at(&code, at, &module) {
            let line = code[..at].matches('\n').count() + 1;
            let under = |m: &str| path == m || path.starts_with(&format!("{m}::"));
            if let Some((_, deny)) = MODEL_FREE.iter().find(|(f, d)| file == *f && under(d)) {
                out.push(format!("{file}:{line}: `crate::{deny}`"));
                continue;
            }
            let top = path.split("::").next().unwrap_or_default();
            for (m, homes) in RULES {
                // A rule names a module and everything under it.
                let hit = *m == top || under(m);
                if hit && !homes.iter().any(|h| file.starts_with(h)) {
                    out.push(format!("{file}:{line}: `crate::{m}`"));
                }
            }
        }
    }
    out
}

fn scan(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            scan(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy();
            let rel = rel.replace('\\', "/");
            let text = std::fs::read_to_string(&path).expect("read source");
            out.extend(violations(&rel, &text));
        }
    }
}

#[test]
fn only_the_composition_root_uses_the_sandbox_and_the_tui() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    scan(root, &root.join("src"), &mut found);
    assert!(
        found.is_empty(),
        "only src/cli (the composition root) may use these outside their own module:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_catches_a_path_into_the_sandbox_or_the_tui() {
    let sneaky = "\
use crate::sandbox::Sandbox;
use crate::{auth::Secret, tui::App};
fn f() { let _ = super::super::sandbox::demo::suggestions(0); }
use crate::{
    config,
    sandbox,
};
// crate::sandbox in a comment is fine
use crate::sandboxed::X;
#[cfg(test)]
mod tests {
    use crate::sandbox::demo;
    fn g() { if true { let _ = crate::tui::App; } }
}
fn h() -> crate::sandbox::Sandbox { todo!() }
";
    let found = violations("src/runtime/x.rs", sneaky);
    for line in [1, 2, 3, 4, 15] {
        assert!(
            found
                .iter()
                .any(|v| v.starts_with(&format!("src/runtime/x.rs:{line}:"))),
            "line {line} missed: {found:?}"
        );
    }
    assert_eq!(found.len(), 5, "{found:?}");
    assert!(violations("src/cli/x.rs", sneaky).is_empty());
    assert!(violations("src/sandbox/x.rs", "use crate::sandbox::state;").is_empty());
    assert!(violations("src/tui/app/mod.rs", "use super::super::tui::App;").is_empty());
    assert!(!violations("src/sandbox/x.rs", "use crate::tui::App;").is_empty());
    // `super` from a nested file stays inside its own module tree.
    assert!(violations("src/runtime/a/b.rs", "use super::sandbox;").is_empty());
}

#[test]
fn the_model_and_the_layout_do_not_reach_into_the_view_or_the_app() {
    let into_view = "use crate::tui::view::render;\nfn f() { super::super::view::list_rows(); }\n";
    assert_eq!(violations("src/tui/app/commands.rs", into_view).len(), 2);
    let found = violations("src/tui/app/mod.rs", "use super::view::screen_layout;\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(violations("src/tui/view/chat.rs", into_view).is_empty());
    assert!(violations("src/tui/event_loop.rs", "use super::view;\n").is_empty());
    assert_eq!(
        violations("src/tui/layout.rs", "use crate::tui::app::Tab;\n").len(),
        1
    );
    assert!(violations("src/tui/layout.rs", "use crate::tui::tab::Tab;\n").is_empty());
}
