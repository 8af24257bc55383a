//! A TLS-only redis-server of the test's own (the plain port off), its certificate
//! signed by a CA made at test time. The CA comes from the `openssl` command (Debian's
//! ca-certificates depends on it, so it is wherever the system's roots are) rather than
//! a certificate crate: no dependency to build for a test. Needs `mod redis_server;`
//! beside it.

#![allow(dead_code, clippy::unwrap_used)]

use super::redis_server::RedisServer;
use dealflow::store::redis::{Connect, RedisStore};
use std::path::{Path, PathBuf};

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (ca.crt, ca.key) in `dir`, named `name`.
pub fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// server.crt / server.key for localhost and 127.0.0.1, signed by the CA in `dir`.
pub fn make_server_cert(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// A TLS-only redis-server (the plain port off) and the CA that signed it.
pub struct TlsRedis {
    pub server: RedisServer,
    pub certs: tempfile::TempDir,
}

impl TlsRedis {
    pub fn start() -> TlsRedis {
        let certs = tempfile::tempdir().unwrap();
        make_ca(certs.path(), "dealflow test CA");
        make_server_cert(certs.path());
        let c = certs.path().to_path_buf();
        let server = RedisServer::start_with(move |_, port| {
            let p = |f: &str| c.join(f).to_str().unwrap().to_string();
            vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                p("server.crt"),
                "--tls-key-file".into(),
                p("server.key"),
                "--tls-ca-cert-file".into(),
                p("ca.crt"),
                "--tls-auth-clients".into(),
                "no".into(),
            ]
        });
        TlsRedis { server, certs }
    }

    pub fn url(&self) -> String {
        format!("rediss://localhost:{}", self.server.port)
    }

    pub fn ca(&self) -> PathBuf {
        self.certs.path().join("ca.crt")
    }

    pub fn store(&self, ns: &str, ca: Option<PathBuf>) -> dealflow::store::Result<RedisStore> {
        let connect = Connect {
            ca_file: ca,
            ..Default::default()
        };
        RedisStore::open_with(&self.url(), &connect, ns, None)
    }
}
