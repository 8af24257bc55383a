//! A redis-server of the test's own, on a free port, killed (and its directory removed)
//! when dropped: for what must not touch the shared server on 6379 (ACLs, TLS, data a
//! concurrent test would also see).

#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

/// A port nothing listens on right now (the kernel's pick; a race with another process
/// is caught by the server failing to start, and retried).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// A plain server; `extra` is appended to its command line.
    pub fn start(extra: &[&str]) -> RedisServer {
        Self::start_with(|_, port| {
            let mut args = vec!["--port".to_string(), port.to_string()];
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        })
    }

    /// A server whose arguments `args(dir, port)` builds (for TLS the port is the TLS
    /// port and the plain one is off).
    pub fn start_with(args: impl Fn(&Path, u16) -> Vec<String>) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("redis-server")
                .args(args(dir.path(), port))
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed");
            // Ready when it accepts a connection; gone if the port was taken meanwhile.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return RedisServer { child, port, dir };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server did not start on a free port");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
