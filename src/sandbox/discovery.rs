//! How a second terminal finds a running sandbox: the process that runs it writes its
//! base URL (`http://127.0.0.1:PORT`, nothing secret) to a file, and `dealflow sandbox
//! phone` reads it.
//!
//! File: `$DEALFLOW_SANDBOX_URL_FILE` if set, else `$XDG_RUNTIME_DIR/dealflow/sandbox.url`
//! (ProjectDirs runtime dir), else `<state dir>/sandbox.url`, else `<data dir>/sandbox.url`.
//! The file is removed when the sandbox that wrote it stops, or given back to the
//! sandbox whose URL it replaced.

use std::path::PathBuf;

pub fn url_file_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("DEALFLOW_SANDBOX_URL_FILE")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    let d = crate::config::project_dirs()?;
    let dir = d
        .runtime_dir()
        .or_else(|| d.state_dir())
        .unwrap_or_else(|| d.data_dir());
    Some(dir.join("sandbox.url"))
}

/// Writes the URL; the returned guard removes the file on drop (if it still holds our URL).
pub fn publish(url: &str) -> std::io::Result<Published> {
    let path = url_file_path()
        .ok_or_else(|| std::io::Error::other("no runtime, state or data directory"))?;
    publish_to(&path, url)
}

/// Writes the URL to `path` (tests; [`publish`] uses the standard location).
pub fn publish_to(path: &std::path::Path, url: &str) -> std::io::Result<Published> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A short-lived command (`accounts list`) that runs its own sandbox must not leave a
    // running TUI's sandbox unfindable: the URL it replaces comes back when it stops.
    let previous = std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != url);
    std::fs::write(path, format!("{url}\n"))?;
    Ok(Published {
        path: path.to_path_buf(),
        url: url.to_string(),
        previous,
    })
}

/// The published sandbox URL, if any.
pub fn read() -> Option<String> {
    let s = std::fs::read_to_string(url_file_path()?).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

#[derive(Debug)]
pub struct Published {
    pub path: PathBuf,
    url: String,
    /// The URL this one replaced, put back on drop.
    previous: Option<String>,
}

impl Drop for Published {
    fn drop(&mut self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|s| s.trim() == self.url) {
            let _ = match &self.previous {
                Some(p) => std::fs::write(&self.path, format!("{p}\n")),
                None => std::fs::remove_file(&self.path),
            };
        }
    }
}

#[cfg(test)]
mod publish_tests {
    use super::*;

    #[test]
    fn a_second_sandbox_gives_the_url_back_when_it_stops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sandbox.url");
        let tui = publish_to(&path, "http://127.0.0.1:1111").expect("publish");
        {
            let _cli = publish_to(&path, "http://127.0.0.1:2222").expect("publish");
            let now = std::fs::read_to_string(&path).expect("read");
            assert_eq!(now.trim(), "http://127.0.0.1:2222");
        }
        let back = std::fs::read_to_string(&path).expect("read");
        assert_eq!(back.trim(), "http://127.0.0.1:1111");
        drop(tui);
        assert!(!path.exists());
    }
}
