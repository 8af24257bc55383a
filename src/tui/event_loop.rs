//! The terminal loop: `tokio::select!` over the crossterm event stream, the `Msg`
//! channel fed by background jobs, and a slow tick. Drains everything pending, then
//! draws once if something changed. `ratatui::init()` installs the panic hook that
//! restores the terminal; `restore()` also runs on every return path.

use super::app::App;
use super::executor::Executor;
use super::handler::{EffectHandler, route};
use super::msg::{Effect, Msg};
use super::notify;
use super::view;
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream, KeyEventKind,
};
use ratatui::crossterm::execute;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const TICK: Duration = Duration::from_secs(2);
/// The fast tick while a countdown runs by the second (the outbox).
const CLOCK: Duration = Duration::from_millis(250);

pub struct LoopOptions {
    pub mouse: bool,
    /// Backends that take effects before the built-in executor (pipeline, chat…).
    pub handlers: Vec<Arc<dyn EffectHandler>>,
}

/// Runs the app until it quits. The terminal is restored whatever happens.
pub fn run(app: App, exec: Executor, opts: LoopOptions) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut terminal = ratatui::init();
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
    let result = rt.block_on(drive(&mut terminal, app, exec, opts.handlers));
    if opts.mouse {
        let _ = execute!(out, DisableMouseCapture);
    }
    let _ = execute!(out, DisableBracketedPaste);
    ratatui::restore();
    result
}

/// Where effects go: store writes and reloads run one at a time, in order, on a worker
/// thread (so an older reload can never land after a newer one); slow reads (chain
/// verification, export) run on their own blocking tasks; notifications are written
/// here.
struct Runner {
    handlers: Vec<Arc<dyn EffectHandler>>,
    ordered: std::sync::mpsc::Sender<Effect>,
    exec: Executor,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Runner {
    fn new(
        exec: Executor,
        tx: mpsc::UnboundedSender<Msg>,
        handlers: Vec<Arc<dyn EffectHandler>>,
    ) -> Runner {
        let fallback: super::handler::Fallback = {
            let e = exec.clone();
            Arc::new(move |effect| e.run(effect))
        };
        for h in &handlers {
            h.attach(&tx, fallback.clone());
        }
        let (ordered, work) = std::sync::mpsc::channel::<Effect>();
        let (e, t) = (exec.clone(), tx.clone());
        std::thread::spawn(move || {
            while let Ok(effect) = work.recv() {
                for m in e.run(effect) {
                    if t.send(m).is_err() {
                        return;
                    }
                }
            }
        });
        Runner {
            handlers,
            ordered,
            exec,
            tx,
        }
    }

    fn spawn(&self, effects: Vec<Effect>) {
        for e in effects {
            let Some(e) = route(e, &self.handlers, &self.tx) else {
                continue;
            };
            match e {
                Effect::Quit => {}
                Effect::Copy(text) => {
                    let mut out = std::io::stdout();
                    let _ = out.write_all(notify::copy_sequence(&text).as_bytes());
                    let _ = out.flush();
                }
                Effect::Notify { title, body } => {
                    let tmux = std::env::var_os("TMUX").is_some();
                    let seq = notify::sequence(&title, &body, tmux);
                    let mut out = std::io::stdout();
                    let _ = out.write_all(seq.as_bytes());
                    let _ = out.flush();
                }
                // Read-only and possibly long (a replay of the whole log, a search or a
                // rare kind walked on Redis): never queued in front of a decision such as
                // an undo. Audit pages carry a generation, so a late one is dropped.
                slow @ (Effect::VerifyAudit
                | Effect::ExportAudit
                | Effect::LoadAudit(_)
                | Effect::LoadOlderActions { .. }
                | Effect::LoadCalibration { .. }) => {
                    let (exec, tx) = (self.exec.clone(), self.tx.clone());
                    tokio::task::spawn_blocking(move || {
                        for m in exec.run(slow) {
                            let _ = tx.send(m);
                        }
                    });
                }
                other => {
                    if self.ordered.send(other).is_err() {
                        let _ = self
                            .tx
                            .send(Msg::LoadFailed("effect worker stopped".into()));
                    }
                }
            }
        }
    }
}

async fn drive(
    terminal: &mut DefaultTerminal,
    mut app: App,
    exec: Executor,
    handlers: Vec<Arc<dyn EffectHandler>>,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut clock = tokio::time::interval(CLOCK);
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let runner = Runner::new(exec, tx, handlers);
    if let Ok(size) = terminal.size() {
        app.update(Msg::Resize(size.width, size.height));
    }
    runner.spawn(app.init());
    // For the start-up benchmark (benches/perf.rs): quit right after the first frame that
    // shows loaded data (with DEALFLOW_FIRST_FRAME_OF=ready: and every backend settled,
    // signed in or not); a value other than "1" names a file that gets the wall-clock
    // time of that frame in microseconds since the Unix epoch.
    let exit_after_first_frame = std::env::var_os("DEALFLOW_EXIT_AFTER_FIRST_FRAME");
    let wait_ready = std::env::var("DEALFLOW_FIRST_FRAME_OF").is_ok_and(|v| v == "ready");
    let mut loaded = false;
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
        if app.dirty {
            terminal.draw(|f| view::render(&app, f))?;
            app.dirty = false;
            let settled = !wait_ready || runner.handlers.iter().all(|h| h.ready());
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
            _ = tick.tick() => Some(Msg::Tick),
            _ = clock.tick(), if !app.outbox.is_empty() => Some(Msg::Clock),
        };
        let mut batch: Vec<Msg> = first.into_iter().collect();
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        for m in batch {
            loaded |= matches!(m, Msg::ActionsLoaded { .. });
            runner.spawn(app.update(m));
        }
        if app.quit {
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
