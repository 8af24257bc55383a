//! The runtime wires adapters to the pure core and runs effects. Every surface (CLI,
//! TUI, MCP, batch) goes through it, so every surface gets the same gates.

pub mod auth0;
pub mod batch;
pub mod chat;
pub mod credentials;
pub mod facts;
pub mod identity;
pub mod pipeline;
pub mod review;
pub mod seal;
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
