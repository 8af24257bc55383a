//! How a second terminal finds a running sandbox: the process that runs it writes its
//! base URL (`http://127.0.0.1:PORT`) and, on the second line, the key its controls ask
//! for (the phone, revoking a grant) to a file only its owner can read, and `dealflow
//! sandbox phone|revoke` reads it. The port is open to every user of the machine; the
//! key is what keeps another user from approving the owner's pushes.
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

/// A running sandbox as its URL file names it.
#[derive(Clone, PartialEq)]
pub struct Found {
    pub url: String,
    /// For `Authorization: Bearer` on `/sandbox/...` controls.
    pub key: String,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field("url", &self.url)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Found {
    fn parse(text: &str) -> Option<Found> {
        let mut lines = text.lines().map(str::trim);
        let url = lines.next().filter(|u| !u.is_empty())?.to_string();
        let key = lines.next().unwrap_or_default().to_string();
        Some(Found { url, key })
    }

    fn text(&self) -> String {
        format!("{}\n{}\n", self.url, self.key)
    }
}

/// Writes the URL and key; the returned guard removes the file on drop (if it still
/// holds our URL).
pub fn publish(url: &str, key: &str) -> std::io::Result<Published> {
    let path = url_file_path()
        .ok_or_else(|| std::io::Error::other("no runtime, state or data directory"))?;
    publish_to(&path, url, key)
}

/// Writes the URL and key to `path` (tests; [`publish`] uses the standard location).
pub fn publish_to(path: &std::path::Path, url: &str, key: &str) -> std::io::Result<Published> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A short-lived command (`accounts list`) that runs its own sandbox must not leave a
    // running TUI's sandbox unfindable: the URL it replaces comes back when it stops.
    let previous = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| Found::parse(&s))
        .filter(|f| f.url != url);
    let mine = Found {
        url: url.to_string(),
        key: key.to_string(),
    };
    super::write_private(path, mine.text().as_bytes())?;
    Ok(Published {
        path: path.to_path_buf(),
        url: url.to_string(),
        previous,
    })
}

/// The published sandbox, if any. A file someone else owns, or that others can read,
/// is not ours to trust (`DEALFLOW_SANDBOX_URL_FILE` may point into a shared directory).
pub fn read() -> Option<Found> {
    let path = url_file_path()?;
    let meta = std::fs::metadata(&path).ok()?;
    if !owned_privately(&meta) {
        tracing::warn!(path = %path.display(), "ignoring a sandbox URL file that is not ours alone");
        return None;
    }
    Found::parse(&std::fs::read_to_string(path).ok()?)
}

fn owned_privately(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    meta.uid() == me && meta.mode() & 0o077 == 0
}

/// Whether something still listens at a published URL (a dead sandbox's URL is not
/// worth handing back).
fn answers(url: &str) -> bool {
    let Some(addr) = url
        .strip_prefix("http://")
        .and_then(|hp| hp.split('/').next())
        .and_then(|hp| hp.parse::<std::net::SocketAddr>().ok())
    else {
        return false;
    };
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).is_ok()
}

#[derive(Debug)]
pub struct Published {
    pub path: PathBuf,
    url: String,
    /// The sandbox this one replaced, put back on drop.
    previous: Option<Found>,
}

impl Drop for Published {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|s| Found::parse(&s))
            .is_some_and(|f| f.url == self.url);
        if ours {
            let _ = match self.previous.as_ref().filter(|p| answers(&p.url)) {
                Some(p) => super::write_private(&self.path, p.text().as_bytes()),
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
        // The earlier sandbox is alive (something listens at its address).
        let alive = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url1 = format!("http://{}", alive.local_addr().expect("addr"));
        let tui = publish_to(&path, &url1, "k1").expect("publish");
        {
            let _cli = publish_to(&path, "http://127.0.0.1:2222", "k2").expect("publish");
            let now = std::fs::read_to_string(&path).expect("read");
            assert_eq!(now, "http://127.0.0.1:2222\nk2\n");
        }
        let back = std::fs::read_to_string(&path).expect("read");
        assert_eq!(back, format!("{url1}\nk1\n"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is the owner's alone: {mode:o}");
        drop(tui);
        assert!(!path.exists());
    }

    #[test]
    fn a_dead_sandbox_is_not_handed_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sandbox.url");
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url1 = format!("http://{}", dead.local_addr().expect("addr"));
        drop(dead);
        let _gone = publish_to(&path, &url1, "k1").expect("publish");
        drop(publish_to(&path, "http://127.0.0.1:2222", "k2").expect("publish"));
        assert!(!path.exists(), "{:?}", std::fs::read_to_string(&path));
        std::mem::forget(_gone);
    }
}
