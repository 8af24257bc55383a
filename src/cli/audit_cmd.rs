//! `dealflow audit verify|export`.

use super::Ctx;
use crate::core::text::line;
use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Recompute the hash chain and check it against the keyring checkpoint; exit 1 and
    /// name the first bad entry (or the cut, wipe or rewrite) if it breaks.
    Verify {
        /// The team's audit stream (`store.team`) instead of your own log.
        #[arg(long)]
        team: bool,
    },
    /// Accept the log as it is now as the new anchor (after you deleted or replaced the
    /// store yourself). The reset is the first thing the re-anchored log records.
    ResetAnchor,
    /// Write the log as JSON lines or CSV.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// Output file (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The team's audit stream (`store.team`): who changed the team policy, and when.
        #[arg(long)]
        team: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

/// Verifies the chain, with a progress bar on stderr when it is a terminal and the run
/// is long (drawn from half a second on); nothing when piped.
fn verify_with_progress(
    store: &dyn crate::store::Store,
) -> Result<std::result::Result<i64, crate::core::audit::ChainBreak>> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return Ok(store.verify_audit()?);
    }
    let total = store.audit_head()?.0;
    let start = std::time::Instant::now();
    let drawn = std::cell::Cell::new(std::time::Duration::ZERO);
    let result = store.verify_audit_progress(&|done| {
        let at = start.elapsed();
        if at.as_millis() < 500 || at.saturating_sub(drawn.get()).as_millis() < 100 {
            return;
        }
        drawn.set(at);
        eprint!("\r{}", progress_bar(done, total, 30));
    });
    if drawn.get() > std::time::Duration::ZERO {
        eprint!("\r\x1b[2K");
    }
    Ok(result?)
}

/// "[#########.....................]  31%  310,000 / 1,000,000 entries".
pub fn progress_bar(done: i64, total: i64, width: usize) -> String {
    let frac = if total > 0 {
        (done as f64 / total as f64).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let filled = (frac * width as f64).round() as usize;
    format!(
        "[{}{}] {:>3}%  {} / {} entries",
        "#".repeat(filled),
        ".".repeat(width - filled),
        (frac * 100.0).round() as u32,
        thousands(done),
        thousands(total)
    )
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

pub fn run(ctx: &Ctx, cmd: AuditCmd) -> Result<ExitCode> {
    match cmd {
        AuditCmd::Verify { team: true } => {
            let store = super::team_cmd::team_store(&ctx.config)?;
            let team = store.team()?.to_string();
            match store.verify_team_audit()? {
                Ok(n) => {
                    println!("team {team} audit stream OK: {n} entries verified");
                    Ok(ExitCode::SUCCESS)
                }
                Err(b) => {
                    eprintln!(
                        "team {team} audit stream BROKEN at entry #{}: {}",
                        b.seq, b.problem
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCmd::Verify { team: false } => match verify_with_progress(ctx.store.as_ref())? {
            Ok(n) => {
                // The chain only proves the log is consistent with itself; the keyring
                // checkpoint proves nothing was cut, wiped or rewritten around it.
                use crate::runtime::seal::{Anchor, KeyringAnchor};
                let anchor = match KeyringAnchor::open() {
                    Ok(a) => a.check(ctx.store.as_ref())?,
                    Err(e) => {
                        println!("audit chain OK: {n} entries verified (not anchored: {e})");
                        return Ok(ExitCode::SUCCESS);
                    }
                };
                match anchor {
                    Anchor::Holds { .. } | Anchor::Missing => {
                        println!("audit chain OK: {n} entries verified; {anchor}");
                        Ok(ExitCode::SUCCESS)
                    }
                    bad => {
                        eprintln!("audit chain BROKEN: {bad} ({n} entries chain correctly)");
                        Ok(ExitCode::FAILURE)
                    }
                }
            }
            Err(b) => {
                eprintln!("audit chain BROKEN at entry #{}: {}", b.seq, b.problem);
                Ok(ExitCode::FAILURE)
            }
        },
        AuditCmd::ResetAnchor => {
            let anchor = crate::runtime::seal::KeyringAnchor::open()?;
            let old = anchor.reset(ctx.store.as_ref());
            // Appended through the anchored store, so this entry starts the new anchor.
            let e = ctx.store.append_audit(crate::core::audit::NewAuditEntry {
                ts: crate::wall::now_ms(),
                actor: super::local_actor(),
                surface: Some(crate::core::domain::Surface::Cli),
                event: "audit.anchor_reset".into(),
                action_id: None,
                outcome: "ok".into(),
                detail: serde_json::json!({
                    "previous_checkpoint": old.map(|(seq, hash)| serde_json::json!({"seq": seq, "hash": hash})),
                    "origin": super::origin(),
                }),
            })?;
            println!("audit log re-anchored at #{}", e.seq);
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::Export {
            format,
            output,
            team,
        } => {
            let team_store = team
                .then(|| super::team_cmd::team_store(&ctx.config))
                .transpose()?;
            let pages: Pages = match &team_store {
                Some(t) => Box::new(|after, n| Ok(t.team_audit_page(after, n)?)),
                None => Box::new(|after, n| Ok(ctx.store.audit_page(after, n)?)),
            };
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new({
                    use std::os::unix::fs::OpenOptionsExt;
                    // The log names who did what with whom: readable by its owner only.
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(p)
                        .with_context(|| format!("cannot create {}", p.display()))?
                })),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let n = export(&pages, format, &mut out)?;
            out.flush()?;
            if let Some(p) = output {
                eprintln!("wrote {n} entries to {}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Where the entries come from: (after, limit) → the next page.
type Pages<'a> = Box<dyn Fn(i64, usize) -> Result<Vec<crate::core::audit::AuditEntry>> + 'a>;

fn for_each_entry(
    pages: &Pages<'_>,
    mut f: impl FnMut(&crate::core::audit::AuditEntry) -> Result<()>,
) -> Result<usize> {
    let mut after = 0;
    let mut n = 0;
    loop {
        let page = pages(after, 5000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            f(e)?;
            n += 1;
        }
    }
    Ok(n)
}

fn export(pages: &Pages<'_>, format: Format, out: &mut dyn Write) -> Result<usize> {
    match format {
        Format::Jsonl => for_each_entry(pages, |e| {
            let line = serde_json::to_string(e)?;
            writeln!(out, "{line}")?;
            Ok(())
        }),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "seq",
                "ts",
                "actor",
                "surface",
                "event",
                "action_id",
                "outcome",
                "detail",
                "prev_hash",
                "hash",
            ])?;
            let n = for_each_entry(pages, |e| {
                w.write_record([
                    e.seq.to_string(),
                    e.ts.to_string(),
                    // Someone will `cat` this or open it in a spreadsheet: an MCP
                    // client's name or a payload must not carry a terminal escape there.
                    line(&e.actor).into_owned(),
                    e.surface
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    line(&e.event).into_owned(),
                    line(&e.action_id.clone().unwrap_or_default()).into_owned(),
                    line(&e.outcome).into_owned(),
                    e.detail.to_string(),
                    e.prev_hash.clone(),
                    e.hash.clone(),
                ])?;
                Ok(())
            })?;
            w.flush()?;
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_progress_bar_fills_with_the_entries_checked() {
        assert_eq!(
            super::progress_bar(310_000, 1_000_000, 10),
            "[###.......]  31%  310,000 / 1,000,000 entries"
        );
        assert_eq!(super::progress_bar(5, 0, 4), "[####] 100%  5 / 0 entries");
    }
}
