//! The terminal loop: `tokio::select!` over the crossterm event stream, the `Msg`
//! channel fed by background jobs, and a slow tick. Drains everything pending, then
//! draws once if something changed. `ratatui::init()` installs the panic hook that
//! restores the terminal; `restore()` also runs on every return path.

use super::app::App;
use super::driver::{Driver, Wiring};
use super::executor::Executor;
use super::msg::Msg;
use super::view;
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream, KeyEventKind,
};
use ratatui::crossterm::execute;
use std::time::Duration;
use tokio::sync::mpsc;

const TICK: Duration = Duration::from_secs(2);
/// The fast tick while a countdown runs by the second (the outbox).
const CLOCK: Duration = Duration::from_millis(250);
/// How long the first frame waits for the queue's first page before it is drawn anyway.
const FIRST_FRAME_WAIT: Duration = Duration::from_millis(40);

pub struct LoopOptions {
    pub mouse: bool,
    /// Where the signed-in services arrive and background reports come in; `None`: no
    /// services are being built (the app says "not signed in" for what needs them).
    pub wiring: Option<Wiring>,
}

/// Runs the app until it quits, on `rt` (the one runtime the services run on too). The
/// terminal is restored whatever happens.
pub fn run(
    rt: &tokio::runtime::Runtime,
    app: App,
    exec: Executor,
    opts: LoopOptions,
) -> std::io::Result<()> {
    // Start-up's reads are asked for before the terminal is set up, so the store works
    // while the screen is prepared: the first frame with data comes that much sooner.
    let (tx, rx, services, first_frame) = match opts.wiring {
        Some(w) => (w.tx, w.rx, Some(w.services), Some(w.first_frame)),
        None => {
            let (tx, rx) = mpsc::unbounded_channel::<Msg>();
            (tx, rx, None, None)
        }
    };
    let driver = {
        let _in_runtime = rt.enter();
        let driver = Driver::new(exec, tx);
        for e in app.init() {
            driver.run(e);
        }
        driver
    };
    crate::wall::startup_mark("first page asked");
    let mut terminal = ratatui::init();
    crate::wall::startup_mark("terminal ready");
    // ratatui's hook restores raw mode and the main screen; also undo what we enabled.
    let ratatui_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(
            std::io::stdout(),
            DisableMouseCapture,
            DisableBracketedPaste
        );
        ratatui_hook(info);
    }));
    let mut out = std::io::stdout();
    let _ = execute!(out, EnableBracketedPaste);
    if opts.mouse {
        let _ = execute!(out, EnableMouseCapture);
    }
    let result = rt.block_on(drive(&mut terminal, app, driver, rx, services, first_frame));
    if opts.mouse {
        let _ = execute!(out, DisableMouseCapture);
    }
    let _ = execute!(out, DisableBracketedPaste);
    ratatui::restore();
    result
}

async fn drive(
    terminal: &mut DefaultTerminal,
    mut app: App,
    mut driver: Driver,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    mut services: Option<tokio::sync::oneshot::Receiver<super::driver::Arrival>>,
    first_frame: Option<std::sync::Arc<tokio::sync::Notify>>,
) -> std::io::Result<()> {
    let mut events = EventStream::new();
    // The first tick one period from now, not at once: start-up already asked for the
    // queue (a tick at 0 read a long queue twice before the first frame settled).
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut clock = tokio::time::interval_at(tokio::time::Instant::now() + CLOCK, CLOCK);
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    if let Ok(size) = terminal.size() {
        for e in app.update(Msg::Resize(size.width, size.height)) {
            driver.run(e);
        }
    }
    // For the start-up benchmark (benches/perf.rs): quit right after the first frame that
    // shows loaded data (with DEALFLOW_FIRST_FRAME_OF=ready: and every backend settled,
    // signed in or not); a value other than "1" names a file that gets the wall-clock
    // time of that frame in microseconds since the Unix epoch.
    let exit_after_first_frame = std::env::var_os("DEALFLOW_EXIT_AFTER_FIRST_FRAME");
    let wait_ready = std::env::var("DEALFLOW_FIRST_FRAME_OF").is_ok_and(|v| v == "ready");
    let mut loaded = false;
    // The first frame waits, briefly, for the queue's first page (or its failure): an
    // empty frame drawn first took the main thread for a whole draw while the page was
    // being read, and the frame with data came after it. Past the wait, what there is
    // is drawn.
    let first_frame_by = tokio::time::Instant::now() + FIRST_FRAME_WAIT;
    let (mut drawn, mut answered, mut data_drawn) = (false, false, false);
    loop {
        if app.clear {
            // Not `Terminal::clear`: ratatui 0.30 asks the terminal where its cursor is
            // (DSR) first, and a terminal that never answers (some SSH clients, serial
            // consoles, a test pty) turned ctrl-l into a fatal error after 2 s. A resize
            // to the current size clears the screen and forces a full redraw, no query.
            let size = terminal.size()?;
            terminal.resize(ratatui::layout::Rect::new(0, 0, size.width, size.height))?;
            app.clear = false;
            app.dirty = true;
        }
        let may_draw = drawn || answered || tokio::time::Instant::now() >= first_frame_by;
        // Not drawn yet: drawn once allowed, whether or not anything marked it dirty.
        if (app.dirty || !drawn) && may_draw {
            terminal.draw(|f| view::render(&app, f))?;
            app.dirty = false;
            if !drawn && let Some(n) = &first_frame {
                n.notify_one();
            }
            drawn = true;
            if loaded && !data_drawn {
                data_drawn = true;
                crate::wall::startup_mark("first frame with data");
            }
            let settled = !wait_ready || app.services_settled();
            if let Some(out) = exit_after_first_frame
                .as_ref()
                .filter(|_| loaded && settled)
            {
                if out.to_str() != Some("1") {
                    std::fs::write(out, first_frame_stamp())?;
                }
                return Ok(());
            }
        }
        let first = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(ev)) => to_msg(ev),
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            m = rx.recv() => m,
            arrived = async {
                match services.as_mut() {
                    Some(r) => r.await,
                    None => std::future::pending().await,
                }
            }, if services.is_some() => {
                services = None;
                let arrival = arrived.unwrap_or(super::driver::Arrival {
                    services: None,
                    report: Err("the sign-in task ended without an answer".into()),
                });
                driver.install(arrival.services);
                Some(Msg::ServicesReady(arrival.report))
            }
            _ = tokio::time::sleep_until(first_frame_by), if !drawn => None,
            _ = tick.tick() => Some(Msg::Tick),
            _ = clock.tick(), if !app.outbox.is_empty() => Some(Msg::Clock),
        };
        let mut batch: Vec<Msg> = first.into_iter().collect();
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        for m in batch {
            loaded |= matches!(m, Msg::ActionsLoaded { .. } | Msg::FirstActions { .. });
            answered |= loaded || matches!(m, Msg::LoadFailed(_));
            for e in app.update(m) {
                driver.run(e);
            }
        }
        if app.quit {
            driver.settle().await;
            return Ok(());
        }
    }
}

/// Now, in microseconds since the Unix epoch, as text.
pub fn first_frame_stamp() -> String {
    crate::wall::now_us().to_string()
}

fn to_msg(ev: Event) -> Option<Msg> {
    match ev {
        Event::Key(k) if k.kind == KeyEventKind::Press => Some(Msg::Key(k)),
        Event::Mouse(m) => Some(Msg::Mouse(m)),
        Event::Paste(s) => Some(Msg::Paste(s)),
        Event::Resize(w, h) => Some(Msg::Resize(w, h)),
        _ => None,
    }
}
