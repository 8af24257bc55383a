//! The terminal loop: `tokio::select!` over the crossterm event stream, the `Msg`
//! channel fed by background jobs, and a slow tick. Drains everything pending, then
//! draws once if something changed. `ratatui::init()` installs the panic hook that
//! restores the terminal; `restore()` also runs on every return path.

use super::app::App;
use super::executor::Executor;
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
use std::time::Duration;
use tokio::sync::mpsc;

const TICK: Duration = Duration::from_secs(2);

pub struct LoopOptions {
    pub mouse: bool,
}

/// Runs the app until it quits. The terminal is restored whatever happens.
pub fn run(app: App, exec: Executor, opts: LoopOptions) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut terminal = ratatui::init();
    let mut out = std::io::stdout();
    let _ = execute!(out, EnableBracketedPaste);
    if opts.mouse {
        let _ = execute!(out, EnableMouseCapture);
    }
    let result = rt.block_on(drive(&mut terminal, app, exec));
    if opts.mouse {
        let _ = execute!(out, DisableMouseCapture);
    }
    let _ = execute!(out, DisableBracketedPaste);
    ratatui::restore();
    result
}

fn spawn_effects(
    effects: Vec<Effect>,
    exec: &Executor,
    tx: &mpsc::UnboundedSender<Msg>,
    app: &App,
) {
    for e in effects {
        match e {
            Effect::Quit => {}
            Effect::Notify { title, body } => {
                let tmux = std::env::var_os("TMUX").is_some();
                let seq = notify::sequence(&title, &body, tmux);
                let mut out = std::io::stdout();
                let _ = out.write_all(seq.as_bytes());
                let _ = out.flush();
            }
            other => {
                let exec = exec.clone();
                let tx = tx.clone();
                // Store calls are blocking (SQLite): keep them off the UI task.
                tokio::task::spawn_blocking(move || {
                    for m in exec.run(other) {
                        if tx.send(m).is_err() {
                            break;
                        }
                    }
                });
            }
        }
    }
    let _ = app;
}

async fn drive(
    terminal: &mut DefaultTerminal,
    mut app: App,
    exec: Executor,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let init = app.init();
    spawn_effects(init, &exec, &tx, &app);
    loop {
        if app.clear {
            terminal.clear()?;
            app.clear = false;
            app.dirty = true;
        }
        if app.dirty {
            terminal.draw(|f| view::render(&app, f))?;
            app.dirty = false;
        }
        let first = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(ev)) => to_msg(ev),
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            m = rx.recv() => m,
            _ = tick.tick() => Some(Msg::Tick),
        };
        let mut batch: Vec<Msg> = first.into_iter().collect();
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        for m in batch {
            let effects = app.update(m);
            spawn_effects(effects, &exec, &tx, &app);
        }
        if app.quit {
            return Ok(());
        }
    }
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
