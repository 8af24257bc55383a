//! `dealflow doctor`: every check, in the order they depend on each other (config →
//! auth.domain → the tenant's discovery document → keyring and sign-in → store →
//! model), so the first line that is not `ok` is the one to fix first. A failing check
//! never stops the ones after it; a check that needs what failed says it was skipped.
//!
//! Doctor changes nothing: it opens the store only if its file exists, never creates
//! the consent key, never seeds the sandbox, writes no log file, and asks the model API
//! only to count tokens (free), never for a completion. It prints no secret.

use super::Cli;
use anyhow::Result;
use std::fmt::Display;
use std::process::ExitCode;
use std::time::Duration;

mod identity;
mod model;
mod operations;
mod store_checks;

#[cfg(test)]
mod tests;

/// How long one network check may take.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Doctor {
    problems: usize,
}

impl Doctor {
    fn say(&self, status: &str, what: &str, text: impl Display) {
        println!("{status:<6}{what:<10}{text}");
    }
    fn ok(&self, what: &str, text: impl Display) {
        self.say("ok", what, text);
    }
    /// Something to do that is not broken (not signed in yet, no API key).
    fn todo(&self, what: &str, text: impl Display) {
        self.say("todo", what, text);
    }
    fn fail(&mut self, what: &str, text: impl Display) {
        self.problems += 1;
        self.say("FAIL", what, text);
    }
    fn skip(&self, what: &str, why: &str) {
        self.say("skip", what, format!("not checked: {why}"));
    }
}

pub fn run(cli: &Cli) -> Result<ExitCode> {
    let mut d = Doctor::default();
    let config = d.config(cli);
    let keyring = super::establish_identity(cli.sandbox);
    let rt = super::exec::runtime()?;
    let domain_set = match &config {
        _ if cli.sandbox => d.sandbox_auth(),
        Some(c) => d.auth(c, &rt),
        None => {
            d.skip("auth", "the config did not load");
            d.skip("tenant", "the config did not load");
            false
        }
    };
    d.keyring(config.as_ref(), cli.sandbox, domain_set);
    let store = match &config {
        Some(c) => d.store(c, cli.sandbox),
        None => {
            d.skip("store", "the config did not load");
            None
        }
    };
    if let Some(store) = &store {
        d.audit(store.as_ref(), keyring.as_deref());
    }
    match &config {
        Some(c) => d.model(c, &rt),
        None => d.skip("model", "the config did not load"),
    }
    if let (Some(c), Some(store)) = (&config, &store) {
        d.suggester(c, store.as_ref());
    }
    if let Some(store) = &store {
        d.device_consent(store.as_ref());
    }
    if let Some(c) = &config {
        d.crm(c, cli.sandbox);
    }
    d.service(cli.sandbox);
    Ok(if d.problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What failed and why at the bottom, without the layers between (an HTTP client
/// repeats the URL in each).
fn outer_and_root(e: &anyhow::Error) -> String {
    let root = e.root_cause().to_string();
    let outer = e.to_string();
    if outer == root {
        outer
    } else {
        format!("{outer}: {root}")
    }
}

fn when(ts: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts).map_or_else(
        || "?".into(),
        |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// The tenant's base URL as sign-in will use it (https:// unless the domain says
/// otherwise; config has already refused plain http off loopback).
fn tenant_base(domain: &str) -> String {
    let d = domain.trim().trim_end_matches('/');
    if d.starts_with("http://") || d.starts_with("https://") {
        d.to_string()
    } else {
        format!("https://{d}")
    }
}

/// `url` with any password in it replaced.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
