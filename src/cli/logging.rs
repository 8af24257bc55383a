//! Where dealflow's own log lines go: `log.file` (default `dealflow.log` in the user's
//! state directory, 0600, rotated once past 10 MB) at `log.level`; never stdout, which
//! is the MCP server's JSON-RPC channel and the TUI's screen. The MCP server also writes
//! warnings and errors to stderr, which MCP clients show in their log pane (info lines
//! there would only be noise).

use crate::config::Config;
use std::path::PathBuf;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

const ROTATE_AT: u64 = 10 * 1024 * 1024;

/// The log file `log.file` names, or the default.
pub fn log_path(config: &Config) -> Option<PathBuf> {
    if !config.raw.log.file.is_empty() {
        return Some(PathBuf::from(&config.raw.log.file));
    }
    Some(crate::config::state_dir()?.join("dealflow.log"))
}

fn open(path: &PathBuf) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_AT) {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// What goes to stderr besides the log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// Nothing (the TUI owns the terminal; commands print their own results).
    Quiet,
    /// Warnings and errors (the MCP server: clients show stderr in their log pane).
    Warnings,
    /// Everything at `log.level` (the background service: under systemd stderr is the
    /// journal, so `journalctl --user -u dealflow` shows what it did).
    All,
}

/// Installs the subscriber once. A log file that cannot be opened is said once on
/// stderr and otherwise ignored: logging never stops work.
pub fn init(config: &Config, stderr: Stderr) {
    let level =
        EnvFilter::try_new(&config.raw.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let file = log_path(config).and_then(|p| match open(&p) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("dealflow: cannot write the log file {}: {e}", p.display());
            None
        }
    });
    let file_layer = file.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::sync::Mutex::new(f))
            .with_ansi(false)
            .with_filter(level)
    });
    let stderr_filter = match stderr {
        Stderr::Quiet => None,
        Stderr::Warnings => Some(EnvFilter::new("warn")),
        Stderr::All => Some(
            EnvFilter::try_new(&config.raw.log.level).unwrap_or_else(|_| EnvFilter::new("info")),
        ),
    };
    // The journal stamps each line itself (systemd sets JOURNAL_STREAM for a unit's
    // stderr), so the time is left out there.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let stderr_layer = stderr_filter.map(|filter| {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false);
        if journal {
            layer.without_time().with_filter(filter).boxed()
        } else {
            layer.with_filter(filter).boxed()
        }
    });
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
}
