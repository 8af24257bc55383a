//! `dealflow mcp`: the MCP server on stdio (stdout carries only JSON-RPC; logs go to
//! stderr), and `dealflow mcp install` for client config snippets.

use super::{Ctx, exec};
use crate::mcp::McpServer;
use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use rmcp::ServiceExt;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum McpCmd {
    /// Print (or, with --write, merge into the client's file) the config that starts dealflow's MCP server.
    Install {
        #[arg(long, value_enum)]
        client: McpClient,
        /// Write it, after showing what changes.
        #[arg(long)]
        write: bool,
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
    super::logging::init(&ctx.config, true);
    let rt = exec::runtime()?;
    rt.block_on(async {
        let wired = exec::wire(ctx).await?;
        if let Some(url) = &wired.sandbox_url {
            eprintln!(
                "dealflow mcp (SANDBOX): approve writes with `dealflow sandbox phone --url {url}`"
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

fn config_path(client: McpClient) -> Option<PathBuf> {
    let home = directories::BaseDirs::new()?;
    Some(match client {
        McpClient::ClaudeDesktop => home.config_dir().join("Claude/claude_desktop_config.json"),
        McpClient::ClaudeCode => PathBuf::from(".mcp.json"),
        McpClient::Cursor => home.home_dir().join(".cursor/mcp.json"),
    })
}

pub fn install(client: McpClient, write: bool, sandbox: bool) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the dealflow binary")?;
    let mut args = vec!["mcp"];
    if sandbox {
        args.insert(0, "--sandbox");
    }
    let entry = json!({ "command": exe.display().to_string(), "args": args });
    let snippet = json!({ "mcpServers": { "dealflow": entry } });
    let Some(path) = config_path(client) else {
        bail!("cannot find your home directory");
    };
    if !write {
        println!("# add to {}", path.display());
        println!("{}", serde_json::to_string_pretty(&snippet)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut doc: Value = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not valid JSON; fix it or drop --write",
                path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let Some(obj) = doc.as_object_mut() else {
        bail!("{} does not hold a JSON object", path.display());
    };
    let servers = obj.entry("mcpServers").or_insert_with(|| json!({}));
    let Some(servers) = servers.as_object_mut() else {
        bail!("{}: mcpServers is not an object", path.display());
    };
    let old = servers.get("dealflow").cloned();
    if old.as_ref() == Some(&entry) {
        println!("{} already starts dealflow this way", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}:", path.display());
    if let Some(old) = &old {
        println!("- \"dealflow\": {old}");
    }
    println!("+ \"dealflow\": {entry}");
    servers.insert("dealflow".into(), entry);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("written");
    Ok(ExitCode::SUCCESS)
}
