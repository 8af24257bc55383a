//! The runtime wires adapters to the pure core and runs effects. Every surface (CLI,
//! TUI, MCP, batch) goes through it, so every surface gets the same gates.

pub mod auth0;
pub mod batch;
pub mod chat;
pub mod credentials;
pub mod crm;
pub mod facts;
pub mod identity;
pub mod pipeline;
pub mod rar;
pub mod reconcile;
pub mod review;
pub mod seal;
pub mod service;
pub mod suggester;
pub mod trust;

/// "pid 4242 on host #1": who holds a store lease (the suggestion engine, the batch
/// gatherer), unique per worker across the processes and machines that share a store,
/// and nothing secret.
pub fn lease_holder() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("pid {} on {} #{n}", std::process::id(), host_name())
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // (or truncates), and we read only up to the first NUL.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "this host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Takes lease `name` for `holder` (see [`crate::store::Store::take_lease`]); a lease
/// whose holder was a process on this host that no longer runs (killed mid-run) is
/// released first, so a crash does not block the next worker until the lease lapses.
pub fn take_lease(
    store: &dyn crate::store::Store,
    name: &str,
    holder: &str,
    now: crate::core::domain::Millis,
    until: crate::core::domain::Millis,
) -> Result<Result<(), crate::store::Lease>, crate::store::StoreError> {
    match store.take_lease(name, holder, now, until)? {
        Err(other) if holder_is_gone(&other.holder) => {
            tracing::info!(lease = name, holder = %other.holder, "taking over a lease its dead holder left");
            store.release_lease(name, &other.holder)?;
            store.take_lease(name, holder, now, until)
        }
        taken => Ok(taken),
    }
}

/// Whether `holder` ("pid 4242 on host #1") names a process on this host that has
/// exited. A holder on another host, or one we cannot parse, is presumed alive.
pub fn holder_is_gone(holder: &str) -> bool {
    let Some(rest) = holder.strip_prefix("pid ") else {
        return false;
    };
    let Some((pid, rest)) = rest.split_once(" on ") else {
        return false;
    };
    let Some((host, _)) = rest.rsplit_once(" #") else {
        return false;
    };
    let Ok(pid) = pid.parse::<libc::pid_t>() else {
        return false;
    };
    if host != host_name() || pid <= 0 || pid == std::process::id() as libc::pid_t {
        return false;
    }
    !pid_alive(pid as u32)
}

/// Whether a process with this pid exists (ours or not: EPERM still means it exists).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}
