//! Where dealflow keeps its long-lived secrets (the login refresh token and the agent
//! client secret): the OS keyring through keyring-core 1.1.
//!
//! Order (crates.md §3.2): Secret Service over zbus, then the kernel keyring through
//! [`KeyutilsStore`] (the user's persistent keyring, read and written directly, after
//! attaching a session keyring, which avoids the EACCES trap on headless boxes), then —
//! only if the user opts in with `DEALFLOW_KEYRING=file` — a 0600 file in the state dir.
//! `DEALFLOW_KEYRING=secret-service|keyutils|file` forces one store.
//! The sandbox uses [`MemoryStore`] so it never touches the user's keyring.

use super::AuthError;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub const SERVICE: &str = "dealflow";
/// Keyring entry names (the "user" part of an entry).
pub const REFRESH_TOKEN: &str = "login-refresh-token";
/// The current API access token with its expiry and verified claims, so each command
/// does not refresh (and rotate) the refresh token: it lives here or in memory, never
/// in the store.
pub const ACCESS_TOKEN: &str = "login-access-token";
pub const AGENT_SECRET: &str = "agent-client-secret";
/// The agent client's private key (PEM) for `auth.agent_auth_method = "private_key_jwt"`.
pub const AGENT_PRIVATE_KEY: &str = "agent-client-private-key";

/// The agent credential `auth.agent_auth_method` needs: (keyring entry, what it is, the
/// `dealflow auth agent-credential` flag that stores it).
pub fn agent_credential_entry(method: &str) -> (&'static str, &'static str, &'static str) {
    match method {
        "private_key_jwt" => (
            AGENT_PRIVATE_KEY,
            "private key (private_key_jwt)",
            " --private-key",
        ),
        _ => (AGENT_SECRET, "secret", ""),
    }
}

/// A small secret store. Blocking: call from `spawn_blocking` in async code.
pub trait SecretStore: Send + Sync {
    fn get(&self, name: &str) -> Result<Option<String>, AuthError>;
    fn set(&self, name: &str, value: &str) -> Result<(), AuthError>;
    fn delete(&self, name: &str) -> Result<(), AuthError>;
    /// Human-readable: which store this is.
    fn describe(&self) -> String;
}

fn kerr(e: keyring_core::Error) -> AuthError {
    // keyring errors never contain the secret itself.
    AuthError::Keyring(e.to_string())
}

/// A keyring-core credential store (the Secret Service).
pub struct KeyringStore {
    store: Arc<keyring_core::CredentialStore>,
    name: String,
    /// Namespaces entries (tests use a unique service so they never clash).
    service: String,
}

/// Session keyrings are per thread (credentials are per task): without one the store
/// resolves `_uid_ses`, then its own KEYCTL_GET_PERSISTENT installs a new session keyring
/// and later calls get EACCES (crates.md §3.2). Attach one on the calling thread first.
fn attach_session_keyring() {
    let _ =
        linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, true);
}

impl KeyringStore {
    fn entry(&self, name: &str) -> Result<keyring_core::Entry, AuthError> {
        keyring_core::Entry::new_in_store(&self.store, &self.service, name).map_err(kerr)
    }

    /// Probes the store with a read; a store that cannot even answer "no entry" is unusable.
    fn probe(self) -> Result<KeyringStore, AuthError> {
        match self.entry("probe")?.get_password() {
            Ok(_) | Err(keyring_core::Error::NoEntry) => Ok(self),
            Err(e) => Err(kerr(e)),
        }
    }

    pub fn secret_service(service: &str) -> Result<KeyringStore, AuthError> {
        let store = zbus_secret_service_keyring_store::Store::new().map_err(kerr)?;
        KeyringStore {
            store,
            name: "Secret Service (D-Bus org.freedesktop.secrets)".into(),
            service: service.into(),
        }
        .probe()
    }
}

impl SecretStore for KeyringStore {
    fn get(&self, name: &str) -> Result<Option<String>, AuthError> {
        match self.entry(name)?.get_password() {
            Ok(s) => Ok(Some(s)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(kerr(e)),
        }
    }
    fn set(&self, name: &str, value: &str) -> Result<(), AuthError> {
        self.entry(name)?.set_password(value).map_err(kerr)
    }
    fn delete(&self, name: &str) -> Result<(), AuthError> {
        match self.entry(name)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(kerr(e)),
        }
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// The kernel keyring (keyutils), for headless boxes without a Secret Service. Entries
/// live in the user's *persistent* keyring and every read and write goes there directly.
/// Session keyrings belong to a thread's credentials, so going through them (as the
/// keyring-core keyutils store does) let one thread or process read its own stale copy
/// after another had rotated the refresh token — which presents a spent token and gets
/// the whole family revoked. Entry names match that store's (`keyring:<name>@<service>`),
/// so tokens it wrote are still found.
pub struct KeyutilsStore {
    service: String,
}

impl KeyutilsStore {
    pub fn open(service: &str) -> Result<KeyutilsStore, AuthError> {
        let s = KeyutilsStore {
            service: service.into(),
        };
        s.get("probe")?;
        Ok(s)
    }

    fn ring() -> Result<linux_keyutils::KeyRing, AuthError> {
        attach_session_keyring();
        linux_keyutils::KeyRing::get_persistent(linux_keyutils::KeyRingIdentifier::Session)
            .map_err(|e| AuthError::Keyring(format!("keyutils: no persistent keyring: {e:?}")))
    }

    fn description(&self, name: &str) -> String {
        format!("keyring:{name}@{}", self.service)
    }

    fn find(&self, name: &str) -> Result<Option<linux_keyutils::Key>, AuthError> {
        match Self::ring()?.search(&self.description(name)) {
            Ok(k) => Ok(Some(k)),
            Err(linux_keyutils::KeyError::KeyDoesNotExist)
            | Err(linux_keyutils::KeyError::KeyRevoked)
            | Err(linux_keyutils::KeyError::KeyExpired) => Ok(None),
            Err(e) => Err(AuthError::Keyring(format!("keyutils: search: {e:?}"))),
        }
    }
}

impl SecretStore for KeyutilsStore {
    fn get(&self, name: &str) -> Result<Option<String>, AuthError> {
        let Some(key) = self.find(name)? else {
            return Ok(None);
        };
        let bytes = key
            .read_to_vec()
            .map_err(|e| AuthError::Keyring(format!("keyutils: read: {e:?}")))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| AuthError::Keyring("keyutils: the entry is not text".into()))
    }
    fn set(&self, name: &str, value: &str) -> Result<(), AuthError> {
        if value.is_empty() {
            return Err(AuthError::Keyring(
                "keyutils cannot hold an empty value".into(),
            ));
        }
        // add_key into the same keyring replaces the entry in place.
        Self::ring()?
            .add_key(&self.description(name), value.as_bytes())
            .map(|_| ())
            .map_err(|e| AuthError::Keyring(format!("keyutils: add: {e:?}")))
    }
    fn delete(&self, name: &str) -> Result<(), AuthError> {
        if let Some(key) = self.find(name)? {
            // Invalidated keys are skipped by every search from now on and the kernel
            // unlinks them everywhere (it has to be done while we still possess it).
            key.invalidate()
                .map_err(|e| AuthError::Keyring(format!("keyutils: invalidate: {e:?}")))?;
        }
        Ok(())
    }
    fn describe(&self) -> String {
        "kernel keyutils (persistent keyring; lost at reboot)".into()
    }
}

/// Opt-in fallback: a JSON file readable only by the user (0600).
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: PathBuf) -> FileStore {
        FileStore { path }
    }

    fn read(&self) -> Result<HashMap<String, String>, AuthError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|_| AuthError::Keyring(format!("{} is corrupt", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
            Err(e) => Err(AuthError::Keyring(format!("{}: {e}", self.path.display()))),
        }
    }

    fn write(&self, m: &HashMap<String, String>) -> Result<(), AuthError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |e: std::io::Error| AuthError::Keyring(format!("{}: {e}", self.path.display()));
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self
            .path
            .with_extension(format!("tmp.{}", std::process::id()));
        let body = serde_json::to_vec(m).map_err(|e| AuthError::Keyring(e.to_string()))?;
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(&body).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

impl FileStore {
    /// Serialises read-modify-write across processes (a TUI and a CLI both refresh the
    /// audit checkpoint), so neither loses the other's entry.
    fn locked(&self) -> Result<std::fs::File, AuthError> {
        let io = |e: std::io::Error| AuthError::Keyring(format!("{}: {e}", self.path.display()));
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path.with_extension("lock"))
            .map_err(io)?;
        f.lock().map_err(io)?;
        Ok(f)
    }
}

impl SecretStore for FileStore {
    fn get(&self, name: &str) -> Result<Option<String>, AuthError> {
        Ok(self.read()?.get(name).cloned())
    }
    fn set(&self, name: &str, value: &str) -> Result<(), AuthError> {
        let _lock = self.locked()?;
        let mut m = self.read()?;
        m.insert(name.into(), value.into());
        self.write(&m)
    }
    fn delete(&self, name: &str) -> Result<(), AuthError> {
        let _lock = self.locked()?;
        let mut m = self.read()?;
        if m.remove(name).is_some() {
            self.write(&m)?;
        }
        Ok(())
    }
    fn describe(&self) -> String {
        format!("file {} (0600, opted in)", self.path.display())
    }
}

/// In-memory store: the sandbox and tests.
#[derive(Default)]
pub struct MemoryStore {
    m: Mutex<HashMap<String, String>>,
}

impl SecretStore for MemoryStore {
    fn get(&self, name: &str) -> Result<Option<String>, AuthError> {
        Ok(self
            .m
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned())
    }
    fn set(&self, name: &str, value: &str) -> Result<(), AuthError> {
        self.m
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.into(), value.into());
        Ok(())
    }
    fn delete(&self, name: &str) -> Result<(), AuthError> {
        self.m
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(())
    }
    fn describe(&self) -> String {
        "memory (sandbox)".into()
    }
}

/// The opt-in file store's path: `<state dir>/secrets.json`.
pub fn file_store_path() -> Option<PathBuf> {
    let d = crate::config::project_dirs()?;
    Some(
        d.state_dir()
            .map_or_else(|| d.data_dir().to_path_buf(), |p| p.to_path_buf())
            .join("secrets.json"),
    )
}

/// Opens the first store that works, following `DEALFLOW_KEYRING` if set. On failure the
/// error lists why each store was rejected.
pub fn open_default() -> Result<Arc<dyn SecretStore>, AuthError> {
    let choice = std::env::var("DEALFLOW_KEYRING").unwrap_or_default();
    let file = || -> Result<Arc<dyn SecretStore>, AuthError> {
        let p = file_store_path()
            .ok_or_else(|| AuthError::Keyring("no home directory for the file store".into()))?;
        Ok(Arc::new(FileStore::new(p)))
    };
    match choice.as_str() {
        "secret-service" => return Ok(Arc::new(KeyringStore::secret_service(SERVICE)?)),
        "keyutils" => return Ok(Arc::new(KeyutilsStore::open(SERVICE)?)),
        "file" => return file(),
        "" | "auto" => {}
        other => {
            return Err(AuthError::Keyring(format!(
                "DEALFLOW_KEYRING={other:?}: use secret-service, keyutils, file or auto"
            )));
        }
    }
    let ss = match KeyringStore::secret_service(SERVICE) {
        Ok(s) => return Ok(Arc::new(s)),
        Err(e) => e,
    };
    let ku = match KeyutilsStore::open(SERVICE) {
        Ok(s) => return Ok(Arc::new(s)),
        Err(e) => e,
    };
    Err(AuthError::Keyring(format!(
        "no usable keyring: Secret Service: {ss}; keyutils: {ku}; \
         set DEALFLOW_KEYRING=file to opt in to a 0600 file in the state directory"
    )))
}
