//! `dealflow import deals|contacts FILE`: a CSV into the store, for reps whose deals
//! live in dealflow rather than a CRM. Every row is checked before anything is written;
//! then the new and changed records go in as one batch (`Store::upsert_many`) and one
//! audit entry records the file, its SHA-256 and the counts. `core::import` decides what
//! each row becomes; this module reads bytes, shows progress and prints.

use super::{Ctx, local_actor, origin};
use crate::core::domain::{Contact, Deal, format_money};
use crate::core::import::{Importer, Kind, Mapping, Record, RowError, Status, parse_override};
use crate::core::text::{line, utc_timestamp};
use crate::wall::now_ms;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// Deals: name, account, amount, stage, owner, last touch, notes and an external id
    /// (the deal's id derives from it, else from name and account, so a re-import
    /// updates instead of duplicating).
    Deals(ImportArgs),
    /// Contacts: name (or first and last name), email, account, title; keyed by email.
    Contacts(ImportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The CSV file, its first line naming the columns; `-` reads stdin.
    #[arg(value_name = "FILE")]
    file: String,
    /// Which column fills a field, where dealflow does not recognise the header:
    /// `--map amount="Deal Value"` (repeatable; `--map notes=` leaves a field out).
    #[arg(long = "map", value_name = "FIELD=HEADER")]
    map: Vec<String>,
    /// Show the mapping, the first rows as they would be stored and the counts, and
    /// write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Import the valid rows and list the others (by default one invalid row means
    /// nothing is imported).
    #[arg(long)]
    skip_invalid: bool,
}

/// Invalid rows listed before "and N more".
const SHOWN_ERRORS: usize = 20;
/// Rows the dry run shows as they would be stored.
const PREVIEW_ROWS: usize = 5;

/// What reading the whole file came to.
#[derive(Default)]
struct Outcome {
    rows: usize,
    new: usize,
    changed: usize,
    unchanged: usize,
    deals: Vec<Deal>,
    contacts: Vec<Contact>,
    preview: Vec<(u64, Status, Record)>,
    errors: Vec<RowError>,
}

impl Outcome {
    fn counts(&self) -> String {
        format!(
            "{} new, {} changed, {} unchanged, {} invalid",
            self.new,
            self.changed,
            self.unchanged,
            self.errors.len()
        )
    }
    fn valid(&self) -> usize {
        self.new + self.changed + self.unchanged
    }
}

pub fn run(ctx: &Ctx, cmd: ImportCmd) -> Result<ExitCode> {
    let (kind, args) = match cmd {
        ImportCmd::Deals(a) => (Kind::Deals, a),
        ImportCmd::Contacts(a) => (Kind::Contacts, a),
    };
    if ctx.config.crm == crate::core::domain::CrmProvider::Salesforce {
        anyhow::bail!(
            "your {} live in Salesforce (crm.provider = \"salesforce\"{}): import them there; dealflow reads them from it",
            kind.noun(2),
            ctx.config
                .file
                .as_ref()
                .map(|f| format!(" in {}", f.display()))
                .unwrap_or_default()
        );
    }
    let started = Instant::now();
    let overrides = args
        .map
        .iter()
        .map(|m| parse_override(m).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    let (name, bytes) = read_input(&args.file)?;
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let (o, mapping) = read_rows(ctx, kind, &name, &bytes, &overrides)?;
    let noun = kind.noun(o.valid());

    if args.dry_run {
        print_preview(&mapping, &o);
        println!(
            "dry run, nothing written: would import {} {noun}: {}",
            o.valid(),
            o.counts()
        );
        return Ok(report_errors(&name, &o.errors, args.skip_invalid));
    }
    if !o.errors.is_empty() && !args.skip_invalid {
        report_errors(&name, &o.errors, false);
        eprintln!(
            "nothing imported: {} invalid row(s) in {name} (fix them, or --skip-invalid to import the {} valid ones)",
            o.errors.len(),
            o.valid()
        );
        return Ok(ExitCode::FAILURE);
    }

    let writing = spinner(format!(
        "writing {} {}",
        o.deals.len() + o.contacts.len(),
        kind.noun(2)
    ));
    let written = ctx.store.upsert_many(&o.deals, &o.contacts);
    writing.finish_and_clear();
    written.with_context(|| format!("importing {name}: nothing was written"))?;
    let mapped: serde_json::Map<String, serde_json::Value> = mapping
        .pairs()
        .filter_map(|(f, h)| h.map(|h| (f.to_string(), h.into())))
        .collect();
    ctx.store
        .append_audit(crate::core::audit::NewAuditEntry {
            ts: now_ms(),
            actor: local_actor(),
            surface: Some(crate::core::domain::Surface::Cli),
            event: "store.imported".into(),
            action_id: None,
            outcome: "ok".into(),
            detail: serde_json::json!({
                "kind": kind,
                "file": name,
                "sha256": sha256,
                "bytes": bytes.len(),
                "rows": o.rows,
                "new": o.new,
                "changed": o.changed,
                "unchanged": o.unchanged,
                "invalid": o.errors.len(),
                "skip_invalid": args.skip_invalid,
                "mapping": mapped,
                "origin": origin(),
            }),
        })
        .context("the import was written but its audit entry was not")?;
    report_errors(&name, &o.errors, true);
    println!(
        "imported {} {noun}: {} in {:.1}s",
        o.valid(),
        o.counts(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The file's bytes and the name messages give it (`<stdin>` for `-`).
fn read_input(file: &str) -> Result<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    if file == "-" {
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
        return Ok(("<stdin>".into(), bytes));
    }
    std::fs::File::open(file)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {file}"))?;
    Ok((line(file).into_owned(), bytes))
}

/// Checks every row against the store as it is now; writes nothing.
fn read_rows(
    ctx: &Ctx,
    kind: Kind,
    name: &str,
    bytes: &[u8],
    overrides: &[(String, String)],
) -> Result<(Outcome, Mapping)> {
    let body = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(body);
    let headers = rdr
        .byte_headers()
        .with_context(|| format!("{name}:1: cannot read the header"))?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            std::str::from_utf8(h).map(str::to_string).map_err(|_| {
                anyhow::anyhow!("{name}:1: column {} of the header is not UTF-8", i + 1)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if headers.iter().all(|h| h.trim().is_empty()) {
        bail!("{name}: empty; its first line must name the columns");
    }
    let mapping =
        Mapping::detect(kind, &headers, overrides).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let (deals, contacts) = match kind {
        Kind::Deals => (ctx.store.list_deals()?, vec![]),
        Kind::Contacts => (vec![], ctx.store.list_contacts()?),
    };
    let mut importer = Importer::new(mapping.clone(), now_ms(), deals, contacts);
    let bar = progress(bytes.len() as u64, kind);
    let mut o = Outcome::default();
    let mut record = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = e.position().map_or(0, csv::Position::line);
                bail!("{name}:{at}: {e}; nothing was imported");
            }
        }
        let (at, byte) = record.position().map_or((0, 0), |p| (p.line(), p.byte()));
        o.rows += 1;
        if o.rows.is_multiple_of(512) {
            bar.set_position(byte);
        }
        let result = cells(&record, &mapping, at).and_then(|cells| importer.row(at, &cells));
        match result {
            Err(e) => o.errors.push(e),
            Ok((r, status)) => {
                match status {
                    Status::New => o.new += 1,
                    Status::Changed => o.changed += 1,
                    Status::Unchanged => o.unchanged += 1,
                }
                if o.preview.len() < PREVIEW_ROWS {
                    o.preview.push((at, status, r.clone()));
                }
                if status != Status::Unchanged {
                    match r {
                        Record::Deal(d) => o.deals.push(d),
                        Record::Contact(c) => o.contacts.push(c),
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok((o, mapping))
}

/// The record's cells as text; a cell that is not UTF-8 is that row's error.
fn cells<'r>(
    record: &'r csv::ByteRecord,
    mapping: &Mapping,
    at: u64,
) -> std::result::Result<Vec<&'r str>, RowError> {
    record
        .iter()
        .enumerate()
        .map(|(c, cell)| {
            std::str::from_utf8(cell).map_err(|e| {
                RowError::new(
                    at,
                    mapping.header(c),
                    &String::from_utf8_lossy(&cell[..cell.len().min(200)]),
                    format!("not UTF-8 (at byte {} of the cell)", e.valid_up_to()),
                )
            })
        })
        .collect()
}

/// A bar on stderr while the file is read, only where stderr is a terminal.
fn progress(total: u64, kind: Kind) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("reading {}", kind.noun(2)));
    bar
}

/// A spinner on stderr while the batch is written, only where stderr is a terminal.
fn spinner(message: String) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let s = indicatif::ProgressBar::new_spinner().with_message(message);
    s.enable_steady_tick(std::time::Duration::from_millis(100));
    s
}

/// Lists at most [`SHOWN_ERRORS`] invalid rows on stderr, and says how it ends: failure
/// when invalid rows stop the import (`skipped` false), success otherwise.
fn report_errors(name: &str, errors: &[RowError], skipped: bool) -> ExitCode {
    for e in errors.iter().take(SHOWN_ERRORS) {
        eprintln!("{name}:{e}");
    }
    if errors.len() > SHOWN_ERRORS {
        eprintln!("and {} more invalid rows", errors.len() - SHOWN_ERRORS);
    }
    if errors.is_empty() || skipped {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The dry run's picture: which column fills which field, then the first rows as they
/// would be stored. Everything from the file is shown escaped.
fn print_preview(mapping: &Mapping, o: &Outcome) {
    println!("mapping (field ← column):");
    for (field, header) in mapping.pairs() {
        match header {
            Some(h) => println!("  {field:<11} ← {:?}", line(h)),
            None => println!("  {field:<11}   (no column: kept as stored; empty for new ones)"),
        }
    }
    if o.preview.is_empty() {
        return;
    }
    println!("first {} rows as they would be stored:", o.preview.len());
    // Two lines a row, each within 80 columns: what the rep checks first (name,
    // account, amount, stage), then the id it is kept under and the rest.
    let fit = |s: &str, w: usize| crate::tui::view::fit(&line(s), w);
    for (at, status, r) in &o.preview {
        let (first, second) = match r {
            Record::Deal(d) => (
                format!(
                    "{} {} {:>12} {}",
                    fit(&d.name, 18),
                    fit(&d.account, 14),
                    format_money(d.amount_cents),
                    d.stage.as_str(),
                ),
                format!(
                    "{} · last touch {}{}",
                    d.id,
                    &utc_timestamp(d.last_touch)[..10],
                    if d.owner.is_empty() {
                        String::new()
                    } else {
                        format!(" · owner {}", fit(&d.owner, 20).trim_end())
                    },
                ),
            ),
            Record::Contact(c) => (
                format!(
                    "{} {} {}",
                    fit(&c.name, 20),
                    fit(&c.email, 26),
                    fit(&c.account, 14),
                ),
                format!("{} · {}", c.id, fit(&c.title, 30).trim_end()),
            ),
        };
        println!("  {at:>5} {:<9} {}", status.as_str(), first.trim_end());
        println!("{:17}{second}", "");
    }
}
