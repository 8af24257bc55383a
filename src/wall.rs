//! The two impure inputs production code reads: the wall clock and randomness for ids.
//! One place for both, outside `core` (which never reads either) and outside the
//! sandbox (which production code must not depend on). Code that decides with time
//! takes the time as a parameter, so tests pass theirs.

/// Since the Unix epoch (zero if the clock is before it). The one reader of the wall
/// clock: `clippy.toml` disallows `SystemTime::now` everywhere else, so time reaches
/// deciding code only through here or as a parameter.
#[allow(clippy::disallowed_methods)]
fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    i64::try_from(since_epoch().as_millis()).unwrap_or(i64::MAX)
}

/// Microseconds since the Unix epoch (0 if the clock is before it): for stamps another
/// process compares with its own reading (the first-frame benchmark).
pub fn now_us() -> u128 {
    since_epoch().as_micros()
}

/// The local time zone's offset from UTC now, in seconds (what the TUI shows times in).
#[allow(clippy::disallowed_methods)]
pub fn utc_offset_s() -> i32 {
    chrono::Local::now().offset().local_minus_utc()
}

/// A random URL-safe token with a recognisable prefix: 32 characters from [0-9a-zA-Z]
/// (about 190 bits), for ids, nonces and JWT ids.
pub fn random_token(prefix: &str) -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    let body: String = (0..32)
        .map(|_| {
            let i = rng.random_range(0..62u8);
            (match i {
                0..=9 => b'0' + i,
                10..=35 => b'a' + i - 10,
                _ => b'A' + i - 36,
            }) as char
        })
        .collect();
    format!("{prefix}{body}")
}

/// How a back-off or a poll waits: tokio's timer in the product. Injectable, so a test
/// states how long something waited instead of timing it.
#[derive(Clone)]
pub struct Wait(pub std::sync::Arc<WaitFn>);

/// The waiting itself: given how long, a future that is ready when that has passed.
pub type WaitFn = dyn Fn(std::time::Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    + Send
    + Sync;

impl Wait {
    /// The real timer.
    pub fn sleep() -> Wait {
        Wait(std::sync::Arc::new(|d| Box::pin(tokio::time::sleep(d))))
    }
}

impl std::fmt::Debug for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wait")
    }
}

/// Start-up's milestones for `benches/perf.rs`: with `DEALFLOW_STARTUP_MARKS=<file>`,
/// appends `<µs since the epoch> <what>` to it, so the bench can say where the time
/// from spawn to the first frame goes (loading the binary, the store, the first page,
/// the draw). Nothing happens without the variable.
pub fn startup_mark(what: &str) {
    if let Some(p) = std::env::var_os("DEALFLOW_STARTUP_MARKS") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(p)
        {
            let _ = writeln!(f, "{} {what}", now_us());
        }
    }
}
