//! What a batch shows and commits to: the binding message the device displays (within
//! CIBA's limits) and the hash of the batch's exact content.

use crate::core::consent::payload_digest;
use crate::core::domain::Action;
use crate::runtime::identity::SignedIn;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// "dealflow: 5 actions - 3 email 2 cal", within CIBA's 64 characters; a single action
/// says what it is ("dealflow: send_email to bill@initech.example").
pub fn binding_message(actions: &[Action]) -> String {
    binding_message_for(actions, None)
}

/// [`binding_message`] as a team lead's phone shows it: the rep whose actions they are
/// comes first ("dealflow: Dana - close_deal deal-acme"), so the lead knows whose close
/// they are asked to approve.
pub fn binding_message_for(actions: &[Action], rep: Option<&str>) -> String {
    let head = match rep.map(ciba_safe).filter(|r| !r.is_empty()) {
        Some(r) => format!("dealflow: {r} -"),
        None => "dealflow:".to_string(),
    };
    if let [a] = actions {
        let full = format!("{head} {} {}", a.kind(), a.params.target());
        return ciba_safe(&full);
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in actions {
        *counts.entry(a.kind().short()).or_default() += 1;
    }
    let mut by_count: Vec<(&str, usize)> = counts.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let n = actions.len();
    let mut msg = ciba_safe(&format!(
        "{head} {n} action{} -",
        if n == 1 { "" } else { "s" }
    ));
    for (kind, c) in by_count {
        let part = format!(" {c} {kind}");
        if msg.len() + part.len() > 64 {
            break;
        }
        msg.push_str(&part);
    }
    msg
}

/// How a lead's phone names the rep: the signed-in user's first name ("Dana"), or
/// without one a short form of their `sub` ("demo-user" for `auth0|demo-user`).
pub fn rep_label(who: &SignedIn) -> String {
    let first = ciba_safe(who.name.split_whitespace().next().unwrap_or(""));
    if !first.is_empty() {
        return first
            .chars()
            .take(20)
            .collect::<String>()
            .trim_end()
            .to_string();
    }
    let short = who.sub.rsplit('|').next().unwrap_or(&who.sub);
    ciba_safe(short)
        .chars()
        .take(16)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// Auth0 accepts only letters, digits, spaces and `+-_.,:#` in a binding message, at
/// most 64 of them; "@" reads naturally as "at".
pub fn ciba_safe(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '@' => out.push_str(" at "),
            c if c.is_ascii_alphanumeric() || " +-_.,:#".contains(c) => out.push(c),
            _ => out.push(' '),
        }
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .chars()
        .take(64)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// A digest of exactly what the device is asked to approve.
pub fn batch_hash(actions: &[Action]) -> String {
    let mut lines: Vec<String> = actions
        .iter()
        .map(|a| format!("{}:{}", a.id, payload_digest(&a.params)))
        .collect();
    lines.sort();
    hex::encode(Sha256::digest(lines.join("\n").as_bytes()))
}
