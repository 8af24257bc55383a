//! `dealflow sandbox serve|phone|revoke`: run a sandbox, and the controls a second
//! terminal uses on a running one (found through its URL file, see
//! [`crate::sandbox::discovery`]).

use super::exec::runtime;
use crate::auth::connect::{expand_scope, short_scope};
use crate::core::domain::Connection;
use crate::sandbox::Sandbox;
use crate::sandbox::auth0::model::PhoneRequest;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, Write};
use std::process::ExitCode;

/// `dealflow sandbox advance`: moves the sandbox world forward by `by`: deals age, what
/// the world's script holds for the days passed happens, and its mail arrives in the
/// emulated inbox (the running sandbox's, or the kept world's when none runs).
pub fn advance(ctx: &super::Ctx, by: &str) -> Result<ExitCode> {
    if ctx.config.crm == crate::core::domain::CrmProvider::Salesforce {
        // The script moves deals in dealflow's own store, which is only a mirror of the
        // org here: its deals would be overwritten, or linger beside the org's.
        bail!(
            "the sandbox's world script moves the deals dealflow keeps itself; with Salesforce as the CRM (crm.provider), change the org instead: `dealflow sandbox salesforce ID --stage NAME`"
        );
    }
    let d = crate::config::parse_duration(by)
        .filter(|d| !d.is_zero() && d.as_secs() <= 365 * 86_400)
        .with_context(|| format!("{by:?}: give a duration up to a year, like 12h, 2d or 1w"))?;
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let now = crate::wall::now_ms();
    // The mail first: a failed delivery must not leave the world half moved.
    let plan = crate::sandbox::world::due(ctx.store.as_ref(), ms)?;
    let delivered = deliver(&plan, now)?;
    let done = crate::sandbox::world::advance(ctx.store.as_ref(), ms, now, &super::local_actor())?;
    println!("sandbox: {by} went by; {} open deal(s) aged", done.aged);
    for what in &done.happened {
        println!("  · {what}");
    }
    if let Some(to) = delivered {
        println!("  ({} message(s) delivered to {to})", done.mail.len());
    }
    println!("a running dealflow's suggestion engine looks again now");
    Ok(ExitCode::SUCCESS)
}

/// Puts `mail` in the emulated inbox: through the running sandbox's control if one
/// runs, else into the kept world file the next sandbox loads. Says where.
fn deliver(mail: &[(&str, &str)], at: i64) -> Result<Option<String>> {
    if mail.is_empty() {
        return Ok(None);
    }
    if let Ok(sb) = Control::find(None) {
        let sent: Result<()> = runtime()?.block_on(async {
            for (from, subject) in mail {
                let body = serde_json::json!({ "from": from, "subject": subject, "at": at });
                let r = sb
                    .call(
                        sb.http
                            .post(format!("{}/sandbox/inbox", sb.base))
                            .json(&body),
                        "the mail",
                    )
                    .await?;
                if !r.status().is_success() {
                    bail!(
                        "the sandbox at {} answered {} to a delivery",
                        sb.base,
                        r.status()
                    );
                }
            }
            Ok(())
        });
        // A URL file left by a sandbox that died: fall through to the kept world.
        if sent.is_ok() {
            return Ok(Some(format!("the running sandbox's inbox ({})", sb.base)));
        }
    }
    let dirs = crate::config::project_dirs().context("no data directory for the sandbox world")?;
    let path = dirs.data_dir().join("sandbox-world.json");
    let world = crate::sandbox::providers::ProviderData::default();
    world
        .persist_to(&path)
        .with_context(|| format!("the sandbox world in {}", path.display()))?;
    for (from, subject) in mail {
        world.deliver(from, subject, at);
    }
    Ok(Some(format!("the kept world's inbox ({})", path.display())))
}

/// `dealflow sandbox serve`: run a sandbox in the foreground and publish its URL.
pub fn serve(port: Option<u16>) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let sb = Sandbox::start(port).await?;
        super::exec::keep_world(&sb)?;
        // Every `--sandbox` command joins this world with a device sign-in; a second's
        // interval keeps that quick (the TUI's sandbox uses the same).
        sb.state.auth0.set_timing(|t| t.device_interval_s = 1);
        let published = sb.publish_url();
        println!("sandbox listening on {}", sb.base_url());
        match &published {
            Ok(p) => println!(
                "URL written to {} (for `dealflow sandbox phone`)",
                p.path.display()
            ),
            Err(e) => eprintln!("could not publish the URL: {e}"),
        }
        println!("Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
        drop(published);
        Ok(ExitCode::SUCCESS)
    })
}

/// `dealflow sandbox salesforce [ID --stage S --amount N]`: the emulated org's
/// Opportunities, or one edited as someone else in Salesforce would.
pub fn salesforce(
    url: Option<&str>,
    id: Option<&str>,
    stage: Option<&str>,
    amount: Option<f64>,
) -> Result<ExitCode> {
    let sb = Control::find(url)?;
    runtime()?.block_on(async {
        let r = match id {
            Some(id) => {
                if stage.is_none() && amount.is_none() {
                    bail!("say what changes: --stage \"Closed Lost\" and/or --amount 90000");
                }
                let mut body = serde_json::json!({});
                if let Some(s) = stage {
                    body["StageName"] = serde_json::json!(s);
                }
                if let Some(a) = amount {
                    body["Amount"] = serde_json::json!(a);
                }
                let url = format!("{}/sandbox/salesforce/opportunities/{id}", sb.base);
                sb.call(sb.http.post(url).json(&body), "the edit").await?
            }
            None => {
                sb.call(
                    sb.http.get(format!("{}/sandbox/salesforce", sb.base)),
                    "the listing",
                )
                .await?
            }
        };
        let status = r.status();
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "the sandbox at {} answered {status}: {}",
                sb.base,
                crate::core::text::line(v[0]["message"].as_str().unwrap_or("no reason given"))
            );
        }
        // Within 80 columns: id, name, amount, stage.
        let fit = |v: &serde_json::Value, w: usize| {
            crate::tui::view::fit(&crate::core::text::line(v.as_str().unwrap_or_default()), w)
        };
        let row = |o: &serde_json::Value| {
            println!(
                "{:<18} {} {:>11} {}",
                fit(&o["Id"], 18).trim_end(),
                fit(&o["Name"], 24),
                crate::core::domain::format_money(
                    (o["Amount"].as_f64().unwrap_or_default() * 100.0).round() as i64
                ),
                fit(&o["StageName"], 20).trim_end(),
            )
        };
        match id {
            Some(_) => {
                println!("sandbox: edited in Salesforce:");
                row(&v);
            }
            None => {
                for o in v["opportunities"].as_array().into_iter().flatten() {
                    row(o);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A running sandbox's controls, as its owner reaches them.
struct Control {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Control {
    /// `--url` (with `$DEALFLOW_SANDBOX_KEY`), then `$DEALFLOW_SANDBOX_URL`, then the
    /// URL file a running sandbox writes (which holds the key too).
    fn find(url: Option<&str>) -> Result<Control> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let published = crate::sandbox::discovery::read();
        let (base, key) = match url
            .map(String::from)
            .or_else(|| env("DEALFLOW_SANDBOX_URL"))
        {
            Some(u) => {
                let u = u.trim_end_matches('/').to_string();
                // The file's key belongs to the sandbox the file names, not to any URL.
                let key = env("DEALFLOW_SANDBOX_KEY").or_else(|| {
                    published
                        .filter(|f| f.url.trim_end_matches('/') == u)
                        .map(|f| f.key)
                });
                (u, key.unwrap_or_default())
            }
            None => {
                let f = published.ok_or_else(|| {
                    anyhow::anyhow!(
                        "no running sandbox found ({}); start one (`dealflow --sandbox`, `dealflow sandbox serve`) or pass --url",
                        crate::sandbox::discovery::url_file_path().map_or_else(
                            || "no url file path".into(),
                            |p| p.display().to_string()
                        )
                    )
                })?;
                (f.url.trim_end_matches('/').to_string(), f.key)
            }
        };
        Ok(Control {
            base,
            key,
            http: reqwest::Client::new(),
        })
    }

    async fn call(&self, req: reqwest::RequestBuilder, what: &str) -> Result<reqwest::Response> {
        let r = req
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("cannot reach the sandbox at {}", self.base))?;
        if r.status() == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "the sandbox at {} refused {what}: its key is in the URL file of the user who runs it (set DEALFLOW_SANDBOX_KEY with --url)",
                self.base
            );
        }
        Ok(r)
    }

    /// The pushes on this user's phone: the rep's, or with `--sandbox-user team-lead`
    /// the lead's (each person's phone shows only their own).
    async fn requests(&self) -> Result<Vec<PhoneRequest>> {
        let me = crate::sandbox::auth0::model::SandboxUser::current().sub();
        let all = self.all_requests().await?;
        let others = all.iter().filter(|r| r.user_sub != me).count();
        if others > 0 {
            eprintln!(
                "({others} more on another user's phone: `dealflow --sandbox-user <user> sandbox phone`)"
            );
        }
        Ok(all.into_iter().filter(|r| r.user_sub == me).collect())
    }

    async fn all_requests(&self) -> Result<Vec<PhoneRequest>> {
        #[derive(serde::Deserialize)]
        struct L {
            requests: Vec<PhoneRequest>,
        }
        let url = format!("{}/sandbox/phone/requests", self.base);
        let l: L = self
            .call(self.http.get(url), "the phone")
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(l.requests)
    }

    /// Approves (all, or only the entries at `only`, 0-based) or denies.
    async fn decide(&self, id: &str, approve: bool, only: Option<&[usize]>) -> Result<bool> {
        let verb = if approve { "approve" } else { "deny" };
        let url = format!("{}/sandbox/phone/requests/{id}/{verb}", self.base);
        let mut req = self.http.post(url);
        if let Some(only) = only {
            req = req.json(&serde_json::json!({ "only": only }));
        }
        Ok(self.call(req, "the phone").await?.status().is_success())
    }
}

fn print_requests(reqs: &[PhoneRequest]) {
    if reqs.is_empty() {
        println!("(no pending requests)");
        return;
    }
    for (i, r) in reqs.iter().enumerate() {
        let left = r.expires_in_ms.max(0) / 1000;
        println!(
            "[{}] \"{}\"\n    from {} for {} ({})  scope: {}  {}:{:02} left",
            i + 1,
            r.binding_message,
            r.requester,
            r.user_name,
            r.user_sub,
            r.scope,
            left / 60,
            left % 60
        );
        // The actions themselves, as the authenticator lists them (RFC 9396).
        for (j, d) in r.authorization_details.iter().enumerate() {
            println!("    {}. {}", j + 1, detail_line(d));
        }
    }
}

/// "send_email to bill@initech.example · Checking in · $75,000 · deal-acme".
fn detail_line(d: &serde_json::Value) -> String {
    let s = |k: &str| {
        d.get(k)
            .and_then(|v| v.as_str())
            .map(|v| crate::core::text::line(v).into_owned())
    };
    let mut parts = vec![format!(
        "{} to {}",
        s("action").unwrap_or_else(|| s("type").unwrap_or_default()),
        s("counterparty").unwrap_or_default()
    )];
    parts.extend(s("summary"));
    if let Some(c) = d.get("amount_cents").and_then(|v| v.as_i64()) {
        parts.push(crate::core::domain::format_money(c));
    }
    // A close names its deal as the counterparty already.
    parts.extend(s("deal_id").filter(|d| Some(d) != s("counterparty").as_ref()));
    parts.join(" · ")
}

/// "1,3" → [0, 2]: entry numbers as listed, 1-based.
fn parse_only(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|n| {
            n.trim()
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .ok_or_else(|| anyhow::anyhow!("--only: {n:?} is not an entry number (1, 2, …)"))
        })
        .collect()
}

/// `dealflow sandbox phone`: list pending CIBA requests and approve/deny them.
/// Lines: `a N` approve, `d N` deny, Enter refresh, `q` quit. `--list` prints once.
/// `--approve N`/`--deny N` act once without prompting (scripts).
pub fn phone(
    url: Option<&str>,
    list_only: bool,
    approve: Option<usize>,
    deny: Option<usize>,
    only: Option<&str>,
) -> Result<ExitCode> {
    let sb = Control::find(url)?;
    let only = only.map(parse_only).transpose()?;
    runtime()?.block_on(async {
        if list_only || approve.is_some() || deny.is_some() {
            let reqs = sb.requests().await?;
            let act = approve.map(|n| (n, true)).or(deny.map(|n| (n, false)));
            if let Some((n, yes)) = act {
                let Some(r) = n.checked_sub(1).and_then(|i| reqs.get(i)) else {
                    bail!("no request number {n}");
                };
                if let Some(bad) = only
                    .iter()
                    .flatten()
                    .find(|&&i| i >= r.authorization_details.len())
                {
                    bail!(
                        "request {n} lists {} action(s); there is no entry {}",
                        r.authorization_details.len(),
                        bad + 1
                    );
                }
                if !sb.decide(&r.id, yes, only.as_deref()).await? {
                    bail!("request {n} is no longer pending");
                }
                let what = match &only {
                    Some(o) => format!(" (only {} of {} actions)", o.len(), r.authorization_details.len()),
                    None => String::new(),
                };
                println!(
                    "{} \"{}\"{what}",
                    if yes { "approved" } else { "denied" },
                    r.binding_message
                );
            } else {
                print_requests(&reqs);
            }
            return Ok(ExitCode::SUCCESS);
        }
        println!("dealflow sandbox phone: {}", sb.base);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(l) = line else { break };
                if tx.blocking_send(l).is_err() {
                    break;
                }
            }
        });
        loop {
            let reqs = sb.requests().await?;
            print_requests(&reqs);
            println!("a N = approve, a N 1,3 = approve only those actions, d N = deny, Enter = refresh, q = quit");
            print!("> ");
            let _ = std::io::stdout().flush();
            let line = tokio::select! {
                l = rx.recv() => match l { Some(l) => l, None => return Ok(ExitCode::SUCCESS) },
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => { println!(); continue; }
            };
            let mut parts = line.split_whitespace();
            let (verb, n, pick_only) = (parts.next().unwrap_or(""), parts.next(), parts.next());
            match verb {
                "q" | "quit" => return Ok(ExitCode::SUCCESS),
                "a" | "d" => {
                    let pick = n
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| n.checked_sub(1))
                        .and_then(|i| reqs.get(i));
                    match pick {
                        Some(r) => {
                            let only = match pick_only.map(parse_only).transpose() {
                                Ok(o) => o,
                                Err(e) => {
                                    println!("{e}");
                                    continue;
                                }
                            };
                            let ok = sb.decide(&r.id, verb == "a", only.as_deref()).await?;
                            println!(
                                "{}",
                                if !ok {
                                    "no longer pending"
                                } else if verb == "a" {
                                    "approved"
                                } else {
                                    "denied"
                                }
                            );
                        }
                        None => println!("which one? e.g. `a 1`"),
                    }
                }
                _ => {}
            }
        }
    })
}

/// `dealflow sandbox revoke google gmail.send`: what a user does in the provider's
/// security settings, so the incremental connect path can be seen: takes the scopes (or,
/// with none named, the whole grant) back from dealflow in the running sandbox.
pub fn revoke(url: Option<&str>, connection: Connection, scopes: &[String]) -> Result<ExitCode> {
    let sb = Control::find(url)?;
    let scopes: Vec<String> = scopes.iter().map(|s| expand_scope(connection, s)).collect();
    runtime()?.block_on(async {
        let url = format!("{}/sandbox/accounts/revoke", sb.base);
        let me = crate::sandbox::auth0::model::SandboxUser::current().sub();
        let body = serde_json::json!({ "connection": connection.as_str(), "scopes": scopes, "sub": me });
        let r = sb.call(sb.http.post(url).json(&body), "the revoke").await?;
        let status = r.status();
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "the sandbox at {} answered {status}: {}",
                sb.base,
                v.get("error_description")
                    .and_then(|d| d.as_str())
                    .unwrap_or("no reason given")
            );
        }
        let left: Vec<&str> = v
            .get("scopes")
            .and_then(|s| s.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str()).map(short_scope).collect())
            .unwrap_or_default();
        let not_granted: Vec<&str> = v
            .get("not_granted")
            .and_then(|s| s.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str()).map(short_scope).collect())
            .unwrap_or_default();
        if !not_granted.is_empty() {
            println!(
                "sandbox: {} was not granting {} (nothing to take back there)",
                connection.as_str(),
                not_granted.join(", ")
            );
        }
        let scopes: Vec<String> = scopes
            .into_iter()
            .filter(|s| !not_granted.contains(&short_scope(s)))
            .collect();
        if scopes.is_empty() && !not_granted.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        if scopes.is_empty() {
            println!(
                "sandbox: {} grant revoked; `dealflow accounts connect` (or `c` on the Permissions tab) connects it again",
                connection.as_str()
            );
        } else {
            println!(
                "sandbox: {} took back {}; still granted: {}",
                connection.as_str(),
                scopes.iter().map(|s| short_scope(s)).collect::<Vec<_>>().join(", "),
                if left.is_empty() { "nothing".into() } else { left.join(", ") }
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
