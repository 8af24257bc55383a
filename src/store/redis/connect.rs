//! How the Redis store connects beyond the URL: the ACL credential and the CA a
//! `rediss://` connection trusts.

use super::Credential;

/// How to connect, beyond the URL.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// The ACL user and password (from the keyring; never in the URL or config.toml).
    pub credential: Option<Credential>,
    /// For `rediss://`: a PEM file of the CA(s) to trust instead of the system's (a
    /// team's private CA). The server's certificate and name are always verified: the
    /// build has no way to turn that off.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Connect {
    pub(super) fn client(&self, url: &str) -> std::result::Result<redis::Client, String> {
        use redis::IntoConnectionInfo;
        let mut info = url.into_connection_info().map_err(|e| e.to_string())?;
        if let Some(c) = &self.credential {
            let settings = info
                .redis_settings()
                .clone()
                .set_username(&c.user)
                .set_password(&c.password);
            info = info.set_redis_settings(settings);
        }
        let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        match &self.ca_file {
            None => redis::Client::open(info).map_err(|e| e.to_string()),
            Some(path) if !tls => Err(format!(
                "store.ca_file ({}) is set but store.url is not rediss:// — the CA would go unused and the connection be in clear text",
                path.display()
            )),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("store.ca_file {}: {e}", path.display()))?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(info, certs)
                    .map_err(|e| format!("store.ca_file {}: {e}", path.display()))
            }
        }
    }
}
