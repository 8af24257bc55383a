fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so `dealflow status | head -1` would panic in println! once
    // the reader is gone. A command-line tool should stop quietly there, as cat does.
    // Sockets are unaffected: the standard library sends with MSG_NOSIGNAL.
    // SAFETY: called once, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    dealflow::wall::startup_mark("main");
    dealflow::cli::run()
}
