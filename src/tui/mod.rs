//! The terminal UI. `App` (state, `update(Msg) -> Vec<Effect>`) and `view` (pure render)
//! hold the logic; `driver` is the one place effects run: store effects through
//! `executor` (the store, the consent engine and `runtime::review::Reviewer`, the one
//! path for human decisions), the rest through the signed-in `services`; `event_loop`
//! owns the terminal. Keys and themes are TOML data (`keymap.toml`, `themes/*.toml`).
//!
//! Must never: do IO in `update` or `view`, or move an action's state other than
//! through `Reviewer`.

pub mod actions;
pub mod app;
pub mod audit;
pub mod chat;
pub mod clock;
pub mod confirm;
pub mod driver;
pub mod editor;
pub mod event_loop;
pub mod executor;
pub mod keymap;
pub mod layout;
pub mod lock;
pub mod msg;
pub mod notify;
pub mod outbox;
pub mod pace;
pub mod pane_scroll;
pub mod permissions;
pub mod services;
pub mod tab;
pub mod theme;
pub mod trust;
pub mod view;

use crate::core::domain::Surface;
use crate::runtime::review::Reviewer;
use crate::store::Store;
use app::{App, Level, Session};
use clock::{Clock, SystemClock};
use executor::Executor;
use keymap::Keymap;
use std::path::PathBuf;
use std::sync::Arc;
use theme::Theme;

/// What the CLI hands the TUI.
pub struct TuiOptions {
    pub sandbox: bool,
    /// The Auth0 tenant domain, if configured.
    pub tenant: Option<String>,
    pub theme: String,
    pub mouse: bool,
    pub notify: bool,
    /// Where user `keymap.toml` and `theme.toml` live (the config dir).
    pub config_dir: Option<PathBuf>,
    /// Where exports go (the data dir).
    pub export_dir: PathBuf,
    /// Where the signed-in services arrive once the composition root has built them
    /// (`driver::wiring`); `None`: none are being built, and what needs them is
    /// answered "not signed in".
    pub wiring: Option<driver::Wiring>,
    /// How many model calls one chat turn may make (`llm.max_iterations`).
    pub max_iterations: u32,
    /// Lock the screen after this long without input (`ui.idle_lock`; `None`: never).
    pub idle_lock: Option<std::time::Duration>,
    /// How long an irreversible send approved here waits in the outbox, where `u` takes
    /// it back (`ui.undo_send`; `None` or zero: it runs at once).
    pub undo_send: Option<std::time::Duration>,
    /// The background service's status file (`runtime::service`), read on each reload
    /// so the status bar says whether the service runs and when it last proposed.
    pub service_status: Option<PathBuf>,
    /// On a team store, how many pushes wait on this user as team lead (read with each
    /// queue reload); `None` elsewhere.
    pub lead_waiting: Option<LeadWaiting>,
}

/// Counts what waits on the signed-in user as team lead, from the team's stream.
pub type LeadWaiting = Arc<dyn Fn() -> Option<usize> + Send + Sync>;

/// The local person acting, as audit rows record it (`runtime::identity`).
pub fn local_actor() -> String {
    crate::runtime::identity::current().actor()
}

fn read_user_file(dir: Option<&PathBuf>, name: &str) -> Option<(String, String)> {
    let p = dir?.join(name);
    let text = std::fs::read_to_string(&p).ok()?;
    Some((text, p.display().to_string()))
}

/// Builds the app and its executor (shared by the real loop and tests).
pub fn build(store: Arc<dyn Store>, opts: &TuiOptions, clock: Arc<dyn Clock>) -> (App, Executor) {
    let user_keys = read_user_file(opts.config_dir.as_ref(), "keymap.toml");
    let (keymap, mut warnings) =
        Keymap::load(user_keys.as_ref().map(|(t, o)| (t.as_str(), o.as_str())));
    let user_theme = read_user_file(opts.config_dir.as_ref(), "theme.toml");
    let (theme, tw) = Theme::load(
        &opts.theme,
        user_theme.as_ref().map(|(t, o)| (t.as_str(), o.as_str())),
        theme::no_color_from_env(),
    );
    let theme = theme.with_depth(theme::depth_from_env());
    warnings.extend(tw);
    let actor = local_actor();
    let session = Session {
        actor: actor.clone(),
        sandbox: opts.sandbox,
        tenant: opts.tenant.clone(),
        store: store.describe(),
        notify: opts.notify,
    };
    let mut app = App::new(session, keymap, theme, clock.clone());
    app.chat = chat::ChatTab::new(opts.max_iterations);
    if opts.wiring.is_some() {
        app.services = app::ServicesState::Starting(vec![]);
    }
    app.lock.idle_ms = opts
        .idle_lock
        .filter(|d| !d.is_zero())
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    app.outbox = outbox::Outbox::new(
        opts.undo_send
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    );
    if let Some(w) = warnings.first() {
        let more = if warnings.len() > 1 {
            format!(" (+{} more)", warnings.len() - 1)
        } else {
            String::new()
        };
        app.set_status(Level::Warn, format!("{w}{more}"));
    }
    let exec = Executor {
        store,
        reviewer: Reviewer {
            actor,
            surface: Surface::ActionCenter,
        },
        clock,
        export_dir: opts.export_dir.clone(),
        service_status: opts.service_status.clone(),
        lead_waiting: opts.lead_waiting.clone(),
        replay: Default::default(),
    };
    (app, exec)
}

/// Starts the TUI on the real terminal, on `rt`, and returns when the user quits.
pub fn run(
    rt: &tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    mut opts: TuiOptions,
) -> std::io::Result<()> {
    let (mut app, exec) = build(store, &opts, Arc::new(SystemClock));
    app.utc_offset_s = crate::wall::utc_offset_s();
    event_loop::run(
        rt,
        app,
        exec,
        event_loop::LoopOptions {
            mouse: opts.mouse,
            wiring: opts.wiring.take(),
        },
    )
}
