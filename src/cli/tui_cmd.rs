//! The terminal UI's composition root: one runtime for the session, the app drawn from
//! the store at once while the signed-in services (pipeline, chat IO, device) and the
//! suggestion engine are wired in the background and handed over when ready.

use super::{Ctx, actions, exec, local_actor, suggest_cmd, team_cmd};
use crate::config::Config;
use crate::wall::now_ms;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The TUI starts only when both ends are a terminal; pipes get the plain `status` print.
pub(super) fn tui_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

pub(super) fn run_tui(ctx: Ctx) -> Result<ExitCode> {
    let export_dir = crate::config::project_dirs()
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."));
    // One runtime for the session: the UI loop, the pipeline (and, with --sandbox, the
    // emulators and the phone's URL file) and the suggestion engine. The services are
    // wired in the background: the first frame shows the store's pipeline without
    // waiting for the sandbox to start or sign-in to finish, and the app holds what
    // needs them meanwhile.
    let rt = exec::runtime()?;
    let (wiring, handle) = crate::tui::driver::wiring();
    let wiring_task = rt.spawn(wire_tui_backend(ctx.clone(), handle));
    let opts = crate::tui::TuiOptions {
        sandbox: ctx.sandbox,
        tenant: Some(ctx.config.raw.auth.domain.clone()).filter(|d| !d.is_empty()),
        theme: ctx.config.raw.ui.theme.clone(),
        mouse: ctx.config.raw.ui.mouse,
        notify: ctx.config.raw.ui.notify,
        config_dir: crate::config::project_dirs().map(|d| d.config_dir().to_path_buf()),
        export_dir,
        wiring: Some(wiring),
        max_iterations: ctx.config.raw.llm.max_iterations,
        idle_lock: Some(ctx.config.idle_lock),
        undo_send: Some(ctx.config.undo_send),
        service_status: crate::runtime::service::status_path(ctx.sandbox),
        lead_waiting: lead_waiting(&ctx.config),
    };
    let ui = crate::tui::run(&rt, ctx.store.clone(), opts).context("terminal UI");
    // Quitting while sign-in is still running lets it finish for a moment: cutting a
    // refresh short after Auth0 rotated the token would lose the new one (and the next
    // start would present the old one, which Auth0 treats as reuse). Then the sandbox,
    // kept alive in the finished task's output, stops with the runtime.
    let abort = wiring_task.abort_handle();
    let mut wired = rt
        .block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), wiring_task).await
        })
        .map_err(|_| abort.abort())
        .ok()
        .and_then(Result::ok)
        .flatten();
    if let Some((_, engine)) = &wired {
        engine.cancel.cancel();
    }
    if let Some((_, engine)) = wired.as_mut() {
        // A run that is filing or running an allowed action finishes it: quitting must
        // not leave an action half-executed (a model call is simply abandoned).
        let task = &mut engine.task;
        let done = rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(300), &mut *task).await
        });
        if done.is_err() {
            eprintln!("dealflow: finishing the suggestion run in progress…");
            let _ = rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(30), task).await
            });
        }
    }
    drop(wired);
    // Dropping a runtime waits for its blocking tasks without limit (a keyring prompt, a
    // refresh lock held by another process): give them a moment, then leave.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    ui?;
    Ok(ExitCode::SUCCESS)
}

/// The TUI's suggestion engine, stopped and awaited when the TUI quits.
struct Engine {
    cancel: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Wires the pipeline and hands the TUI its services (or why there are none).
async fn wire_tui_backend(
    ctx: Ctx,
    handle: crate::tui::driver::WiringHandle,
) -> Option<(exec::Wired, Engine)> {
    use crate::tui::msg::Msg;
    handle.first_frame().await;
    let w = match exec::wire_quietly(&ctx).await {
        Ok(w) => w,
        Err(e) => {
            handle.ready(None, Err(format!("{e:#}")));
            return None;
        }
    };
    let model = crate::llm::AnthropicClient::from_env(&ctx.config.raw.llm)
        .ok()
        .map(|m| Arc::new(m) as Arc<dyn crate::llm::LanguageModel>);
    let services = crate::tui::services::Services::new(
        w.pipeline.clone(),
        w.device.clone(),
        crate::runtime::batch::BatchOptions {
            window: ctx.config.batch_window,
            concurrency: ctx.config.raw.batch.concurrency as usize,
            actor: local_actor(),
            ..Default::default()
        },
        local_actor(),
        model,
    )
    .with_session(w.session.clone());
    let text = match w.reconciled.len() {
        0 => "signed in: execution ready".to_string(),
        n => format!(
            "signed in; {n} action(s) a previous run left executing were reconciled (see the audit log)"
        ),
    };
    let offline_chat = services.offline_chat();
    handle.ready(
        Some(Arc::new(services)),
        Ok(crate::tui::msg::Ready { text, offline_chat }),
    );
    // The suggestion engine: at start, on `agent.suggest_every`, and when the pipeline
    // changes (another terminal's `sandbox advance`, a CRM sync). What it files shows up
    // on the next queue reload; each run says what it did on the status line.
    let engine = Arc::new(suggest_cmd::suggester(&ctx, w.pipeline.clone()));
    let report_to = Arc::new(handle);
    let report = Arc::new(
        move |r: Result<
            crate::runtime::suggester::Run,
            crate::runtime::suggester::SuggestError,
        >| {
            let (ok, text) = match r {
                Ok(run) => (true, run.summary()),
                Err(e) => (false, format!("suggestions: {e}")),
            };
            report_to.report(Msg::Status { ok, text });
        },
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(engine.watch(
        ctx.config.suggest_every,
        crate::runtime::suggester::CHANGE_POLL,
        Arc::new(now_ms),
        report,
        cancel.clone(),
    ));
    Some((w, Engine { cancel, task }))
}

/// On a team store, a count of what waits on the signed-in user as team lead, read from
/// the team's stream incrementally (only entries newer than the last read are fetched).
fn lead_waiting(config: &Config) -> Option<crate::tui::LeadWaiting> {
    if config.raw.store.url.is_empty() || config.raw.store.team.is_empty() {
        return None;
    }
    let store = team_cmd::team_store(config).ok()?;
    let me = crate::runtime::identity::current().signed_in.clone()?.sub;
    let seen = std::sync::Mutex::new((0i64, Vec::new()));
    Some(Arc::new(move || {
        let mut g = seen.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let page = store.team_audit_page(g.0, 1000).ok()?;
            let Some(last) = page.last() else { break };
            g.0 = last.seq;
            g.1.extend(page);
        }
        Some(actions::waiting_on_lead(&g.1, &me, now_ms()).len())
    }))
}
