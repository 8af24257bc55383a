//! `dealflow mcp`: the MCP server on stdio (stdout carries only JSON-RPC; logs go to
//! stderr), and `dealflow mcp install` for client config snippets.

mod ordered;

use super::{Ctx, exec};
use crate::mcp::McpServer;
use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use ordered::Json;
use rmcp::ServiceExt;
use serde::Serialize;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum McpCmd {
    /// Print (or, with --write, merge into the client's file) the config that starts dealflow's MCP server.
    Install {
        #[arg(long, value_enum)]
        client: McpClient,
        /// Merge it into the client's file: shows the change and asks first, keeps the
        /// old file as <file>.bak, and replaces the file in one step.
        #[arg(long)]
        write: bool,
        /// With --write: do not ask (for scripts).
        #[arg(long, requires = "write")]
        yes: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum McpClient {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
}

pub fn serve(ctx: &Ctx) -> Result<ExitCode> {
    // stdout belongs to JSON-RPC: the log goes to the log file, and warnings to stderr.
    super::logging::init(&ctx.config, super::logging::Stderr::Warnings);
    let rt = exec::runtime()?;
    rt.block_on(async {
        let wired = exec::wire(ctx).await?;
        if let Some(url) = &wired.sandbox_url {
            eprintln!(
                "dealflow mcp (SANDBOX at {url}): approve writes with `dealflow sandbox phone` in another terminal"
            );
        }
        let server = McpServer::new(
            wired.pipeline.clone(),
            wired.device.clone(),
            ctx.config.mcp_wait_bound,
        );
        let (transport, written) =
            crate::mcp::stdio::filtered(tokio::io::stdin(), tokio::io::stdout());
        let running = server
            .serve(transport)
            .await
            .context("MCP handshake on stdio")?;
        running.waiting().await.context("MCP session")?;
        // The last answers reach stdout before the process ends.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), written).await;
        drop(wired);
        Ok(ExitCode::SUCCESS)
    })
}

/// How the installed entry starts dealflow: the global flags this command ran with, so
/// the MCP server uses the same config, store and mode.
pub struct Launch {
    pub sandbox: bool,
    /// `--config`, or `DEALFLOW_CONFIG` (clap reads both into one value).
    pub config: Option<PathBuf>,
    pub store: Option<String>,
}

fn config_path(client: McpClient) -> Option<PathBuf> {
    let home = directories::BaseDirs::new()?;
    Some(match client {
        McpClient::ClaudeDesktop => home.config_dir().join("Claude/claude_desktop_config.json"),
        McpClient::ClaudeCode => PathBuf::from(".mcp.json"),
        McpClient::Cursor => home.home_dir().join(".cursor/mcp.json"),
    })
}

/// The arguments that start `command` as this invocation would (sandbox, config, store).
/// Paths are made absolute: an MCP client or systemd starts dealflow from a working
/// directory of its own choosing.
pub(super) fn launch_args(launch: &Launch, command: &[&str]) -> Result<Vec<String>> {
    let mut args = Vec::new();
    if launch.sandbox {
        args.push("--sandbox".to_string());
    }
    if let Some(c) = &launch.config {
        let abs = std::path::absolute(c)
            .with_context(|| format!("--config {}: cannot make it absolute", c.display()))?;
        if !abs.is_file() {
            bail!(
                "{}: no such file (from --config or DEALFLOW_CONFIG); dealflow would fail to start with it",
                abs.display()
            );
        }
        args.extend(["--config".to_string(), abs.display().to_string()]);
    }
    if let Some(s) = &launch.store {
        let abs = std::path::absolute(s)
            .with_context(|| format!("--store {s}: cannot make it absolute"))?;
        args.extend(["--store".to_string(), abs.display().to_string()]);
    }
    args.extend(command.iter().map(|c| c.to_string()));
    Ok(args)
}

/// The keys dealflow owns in its entry; everything else there (`env`, `type`, `cwd`…)
/// is the user's and is kept.
fn entry_fields(launch: &Launch) -> Result<Vec<(String, Json)>> {
    let exe = std::env::current_exe().context("cannot find the dealflow binary")?;
    let args = launch_args(launch, &["mcp"])?
        .into_iter()
        .map(Json::String)
        .collect();
    Ok(vec![
        ("command".into(), Json::String(exe.display().to_string())),
        ("args".into(), Json::Array(args)),
    ])
}

pub fn install(client: McpClient, write: bool, yes: bool, launch: &Launch) -> Result<ExitCode> {
    let fields = entry_fields(launch)?;
    let Some(path) = config_path(client) else {
        bail!("cannot find your home directory");
    };
    if write {
        return write_entry(&path, fields, yes);
    }
    // stdout carries only the JSON, so `mcp install > file` is a valid file.
    eprintln!("# add to {}", path.display());
    let mut servers = Json::object();
    servers.set("dealflow", Json::Object(fields));
    let mut snippet = Json::object();
    snippet.set("mcpServers", servers);
    println!("{}", render(&snippet, b"  ")?);
    Ok(ExitCode::SUCCESS)
}

fn write_entry(path: &Path, fields: Vec<(String, Json)>, yes: bool) -> Result<ExitCode> {
    let target = resolve(path)?;
    let old_text = read_optional(&target)?;
    let mut doc = match old_text.as_deref() {
        Some(text) if !text.trim().is_empty() => serde_json::from_str(text).with_context(|| {
            format!(
                "{} is not valid JSON; fix it or drop --write",
                target.display()
            )
        })?,
        _ => Json::object(),
    };
    let (old, new) = merge_entry(&mut doc, fields, &target)?;
    if old.as_ref() == Some(&new) {
        println!("{} already starts dealflow this way", target.display());
        return Ok(ExitCode::SUCCESS);
    }
    show_change(&target, old.as_ref(), &new)?;
    if !yes {
        confirm(&target)?;
    }
    let indent = old_text.as_deref().map_or(b"  ".to_vec(), detect_indent);
    let text = render(&doc, &indent)? + "\n";
    let backup = match old_text {
        Some(_) => Some(back_up(&target)?),
        None => None,
    };
    write_atomically(&target, text.as_bytes())?;
    match backup {
        Some(b) => println!(
            "wrote {} (the previous version is in {})",
            target.display(),
            b.display()
        ),
        None => println!("wrote {}", target.display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// The file a symlink points to: replacing the link itself would cut it from, say, a
/// dotfiles repository.
fn resolve(path: &Path) -> Result<PathBuf> {
    if path.is_symlink() {
        return std::fs::canonicalize(path)
            .with_context(|| format!("{}: cannot follow the symlink", path.display()));
    }
    Ok(path.to_path_buf())
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Puts dealflow's fields into `mcpServers.dealflow`, keeping the entry's other keys.
/// Returns the entry before and after.
fn merge_entry(
    doc: &mut Json,
    fields: Vec<(String, Json)>,
    path: &Path,
) -> Result<(Option<Json>, Json)> {
    if !matches!(doc, Json::Object(_)) {
        bail!("{} does not hold a JSON object", path.display());
    }
    if doc.get("mcpServers").is_none() {
        doc.set("mcpServers", Json::object());
    }
    let Some(servers @ Json::Object(_)) = doc.get_mut("mcpServers") else {
        bail!("{}: mcpServers is not an object", path.display());
    };
    let old = servers.get("dealflow").cloned();
    let mut new = match &old {
        None => Json::object(),
        Some(o @ Json::Object(_)) => o.clone(),
        Some(_) => bail!(
            "{}: mcpServers.dealflow is not an object; fix or remove it",
            path.display()
        ),
    };
    for (k, v) in fields {
        new.set(&k, v);
    }
    servers.set("dealflow", new.clone());
    Ok((old, new))
}

/// The entry as shown in the diff: values under `env` are hidden, since people keep API
/// keys there.
fn shown(entry: &Json) -> Result<String> {
    let mut e = entry.clone();
    if let Some(Json::Object(vars)) = e.get_mut("env") {
        for (_, v) in vars.iter_mut() {
            *v = Json::String("…".into());
        }
    }
    Ok(serde_json::to_string(&e)?)
}

/// The change goes to stderr, beside the question (stdout may be a file).
fn show_change(path: &Path, old: Option<&Json>, new: &Json) -> Result<()> {
    eprintln!("{}:", path.display());
    if let Some(old) = old {
        eprintln!("- \"dealflow\": {}", shown(old)?);
    }
    eprintln!("+ \"dealflow\": {}", shown(new)?);
    Ok(())
}

fn confirm(path: &Path) -> Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "{} not written: no terminal to ask on; pass --yes to write without asking",
            path.display()
        );
    }
    eprint!("Write {}? [y/N] ", path.display());
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        return Ok(());
    }
    bail!("{} not written (you said no)", path.display())
}

/// The indentation the file already uses (two spaces when it shows none).
fn detect_indent(text: &str) -> Vec<u8> {
    text.lines()
        .skip(1)
        .map(|l| &l[..l.len() - l.trim_start().len()])
        .find(|ws| !ws.is_empty())
        .unwrap_or("  ")
        .as_bytes()
        .to_vec()
}

fn render(doc: &Json, indent: &[u8]) -> Result<String> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(indent),
    );
    doc.serialize(&mut ser)?;
    Ok(String::from_utf8(out)?)
}

/// `<file>.bak`, a copy of the file as it was (with its mode).
fn back_up(path: &Path) -> Result<PathBuf> {
    let mut name = path.as_os_str().to_owned();
    name.push(".bak");
    let bak = PathBuf::from(name);
    std::fs::copy(path, &bak)
        .with_context(|| format!("cannot back up {} to {}", path.display(), bak.display()))?;
    Ok(bak)
}

/// A temporary file in the same directory, renamed over the target: a reader (or a crash)
/// sees the old file or the new one, never half of it. The file keeps its mode; a new one
/// is 0600, as these files often carry API keys in `env`.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mode = std::fs::metadata(path).ok().map(|m| m.permissions());
    let mut tmp = tempfile::Builder::new()
        .prefix(".dealflow-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write a temporary file in {}", dir.display()))?;
    if let Some(mode) = mode {
        tmp.as_file()
            .set_permissions(mode)
            .with_context(|| format!("cannot set the mode of the new {}", path.display()))?;
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::detect_indent;

    #[test]
    fn indentation_follows_the_file() {
        assert_eq!(detect_indent("{\n    \"a\": 1\n}\n"), b"    ");
        assert_eq!(detect_indent("{\n\t\"a\": 1\n}\n"), b"\t");
        assert_eq!(detect_indent("{\"a\": 1}"), b"  ");
    }
}
