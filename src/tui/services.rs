//! The signed-in services: what the store alone cannot run — executions through the one
//! pipeline, CIBA batches, the chat runtime, account connects and the device unlock.
//! Each effect spawns its work on the runtime and reports back through `Msg`s, so the UI
//! task never blocks. Built in the background by the composition root (`cli`) and handed
//! to [`super::driver::Driver`] when ready; absent when nobody is signed in.

use super::msg::{Msg, PipelineEffect};
use crate::core::agent::Io;
use crate::core::domain::Connection;
use crate::core::domain::Surface;
use crate::core::permissions::Approver;
use crate::llm::LanguageModel;
use crate::runtime::batch::{BatchOptions, DeviceAnswer, DeviceConsent, run_once};
use crate::runtime::chat::{ChatIo, ChatModel};
use crate::runtime::credentials::Subject;
use crate::runtime::pipeline::Pipeline;
use crate::runtime::review::Reviewer;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio_util::sync::CancellationToken;

pub struct Services {
    pipeline: Arc<Pipeline>,
    device: Arc<dyn DeviceConsent>,
    batch: BatchOptions,
    actor: String,
    /// The chat machine's IO (the machine is the Chat tab's).
    chat: Arc<ChatIo>,
    cancel: CancellationToken,
    /// The signed-in session, for connecting accounts (My Account API).
    session: Option<Arc<crate::auth::session::Session>>,
    /// The running connect: where a pasted redirect goes, and how to stop it.
    connecting: Mutex<Option<(UnboundedSender<String>, CancellationToken)>>,
}

use crate::wall::now_ms;

impl Services {
    pub fn new(
        pipeline: Arc<Pipeline>,
        device: Arc<dyn DeviceConsent>,
        batch: BatchOptions,
        actor: String,
        model: Option<Arc<dyn LanguageModel>>,
    ) -> Services {
        // `None`: no API key, so chat uses the offline planner (said so in the chat).
        let chat = ChatIo::new(
            model.map_or(ChatModel::Offline, ChatModel::Remote),
            pipeline.clone(),
            device.clone(),
            actor.clone(),
        );
        Services {
            pipeline,
            device,
            batch,
            actor,
            chat,
            cancel: CancellationToken::new(),
            session: None,
            connecting: Mutex::new(None),
        }
    }

    /// Lets the TUI connect accounts as this session's user.
    pub fn with_session(mut self, session: Arc<crate::auth::session::Session>) -> Services {
        self.session = Some(session);
        self
    }

    /// The My Account connect flow: a link for the browser, then the redirect on a
    /// loopback listener or pasted into the popup (a browser on another machine).
    fn connect(&self, connection: Connection, tx: &UnboundedSender<Msg>) {
        use super::msg::ConnectEvent;
        use crate::auth::connect::{ConnectClient, LoopbackRedirect, parse_redirect};
        let done = move |result| Msg::Connect(ConnectEvent::Done { connection, result });
        let Some(session) = self.session.clone() else {
            let _ = tx.send(done(Err("connect: no signed-in session".into())));
            return;
        };
        let (paste_tx, mut pasted) = mpsc::unbounded_channel::<String>();
        let stop = self.cancel.child_token();
        if let Ok(mut slot) = self.connecting.lock()
            && let Some((_, old)) = slot.replace((paste_tx, stop.clone()))
        {
            old.cancel();
        }
        let tx = tx.clone();
        tokio::spawn(async move {
            let result = async {
                let cc = ConnectClient::new(&session);
                let plan = cc
                    .plan(connection, &[])
                    .await
                    .map_err(|e| e.to_string())?;
                let refs: Vec<&str> = plan.request.iter().map(String::as_str).collect();
                let lb = LoopbackRedirect::bind()
                    .await
                    .map_err(|e| format!("cannot listen on 127.0.0.1 for the redirect: {e}"))?;
                let start = cc
                    .start(connection, &refs, &lb.redirect_uri)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = tx.send(Msg::Connect(ConnectEvent::Link {
                    connection,
                    url: start.connect_url.clone(),
                    plan: plan.describe(),
                }));
                let wait = lb.wait();
                tokio::pin!(wait);
                let (code, state) = loop {
                    tokio::select! {
                        r = &mut wait => break r.map_err(|e| e.to_string())?,
                        Some(line) = pasted.recv() => match parse_redirect(&line) {
                            Some(pair) => break pair,
                            None => {
                                let _ = tx.send(Msg::Status {
                                    ok: false,
                                    text: "that address has no connect_code and state: paste the full URL the browser ended on".into(),
                                });
                            }
                        },
                        _ = stop.cancelled() => return Err(format!("connect {}: cancelled", connection.as_str())),
                    }
                };
                let acct = cc
                    .complete(&start, &code, &state)
                    .await
                    .map_err(|e| e.to_string())?;
                let added: Vec<&str> = plan
                    .adding
                    .iter()
                    .map(|s| crate::auth::connect::short_scope(s))
                    .collect();
                Ok(if added.is_empty() {
                    format!(
                        "connected {}: grant renewed; {} scope(s) granted",
                        acct.connection,
                        acct.scopes.len()
                    )
                } else {
                    format!(
                        "connected {}: added {}; {} scope(s) granted",
                        acct.connection,
                        added.join(", "),
                        acct.scopes.len()
                    )
                })
            }
            .await;
            let _ = tx.send(done(result));
        });
    }

    /// A pasted redirect goes to the running connect; `None` cancels it.
    fn connect_input(&self, pasted: Option<String>) {
        let Ok(mut slot) = self.connecting.lock() else {
            return;
        };
        match pasted {
            Some(line) => {
                if let Some((tx, _)) = slot.as_ref() {
                    let _ = tx.send(line);
                }
            }
            None => {
                if let Some((_, stop)) = slot.take() {
                    stop.cancel();
                }
            }
        }
    }

    fn execute(&self, ids: Vec<String>, tx: &UnboundedSender<Msg>) {
        let (p, tx) = (self.pipeline.clone(), tx.clone());
        tokio::spawn(async move {
            for id in ids {
                let result = match p.execute(&id, &Subject::User, now_ms()).await {
                    Ok(done) => match done.outcome {
                        Ok(o) => Ok(o.summary),
                        Err(e) => Err(e.to_string()),
                    },
                    Err(e) => Err(e.to_string()),
                };
                let _ = tx.send(Msg::Executed { id, result });
            }
        });
    }

    fn send_to_batch(&self, ids: Vec<String>, tx: &UnboundedSender<Msg>) {
        let me = Reviewer {
            actor: self.actor.clone(),
            surface: Surface::ActionCenter,
        };
        let (p, device, opts, cancel, tx) = (
            self.pipeline.clone(),
            self.device.clone(),
            self.batch.clone(),
            self.cancel.clone(),
            tx.clone(),
        );
        // Queuing writes to the store: off the UI task (a slow disk or a remote Redis
        // must not freeze the keyboard), like everything else this handler starts.
        tokio::spawn(async move {
            let store = p.store.clone();
            let said = tx.clone();
            let queued = tokio::task::spawn_blocking(move || {
                let mut queued = 0;
                for id in &ids {
                    match me.queue_for_device(store.as_ref(), id, now_ms()) {
                        Ok(_) => queued += 1,
                        Err(e) => {
                            let _ = said.send(Msg::Status {
                                ok: false,
                                text: format!("{id}: {e}"),
                            });
                        }
                    }
                }
                queued
            })
            .await
            .unwrap_or(0);
            if queued == 0 {
                return;
            }
            let _ = tx.send(Msg::Status {
                ok: true,
                text: format!("{queued} queued: approve the push on your phone"),
            });
            let text = match run_once(p, device.as_ref(), &opts, &cancel).await {
                Ok(r) if r.elsewhere.is_some() => format!(
                    "batch: another dealflow ({}) is gathering the device queue; what it did not take waits for the next round",
                    r.elsewhere.unwrap_or_default()
                ),
                Ok(r) => format!("batch: {}", r.counts()),
                Err(e) => format!("batch: {e}"),
            };
            let _ = tx.send(Msg::Status { ok: true, text });
        });
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Services {
    /// Unlocking takes a yes on the user's device; the token that comes with it is
    /// dropped unused.
    fn request_unlock(&self, tx: &UnboundedSender<Msg>) {
        let (device, cancel, tx) = (self.device.clone(), self.cancel.clone(), tx.clone());
        let message = crate::runtime::batch::ciba_safe(&format!(
            "Unlock dealflow for {}",
            self.actor.trim_start_matches("user:")
        ));
        tokio::spawn(async move {
            let answer = match device.request(&Approver::User, &message, None).await {
                Ok(req) => match device.wait(&req, &cancel).await {
                    Ok(DeviceAnswer::Approved { .. }) => Ok("approved on the device".to_string()),
                    Ok(DeviceAnswer::Denied) => Err("denied on the device".to_string()),
                    Ok(DeviceAnswer::Expired) => {
                        Err("the request expired: press Enter to ask again".to_string())
                    }
                    Ok(DeviceAnswer::Cancelled) => Err("cancelled".to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(format!("cannot reach your device: {e}")),
            };
            let _ = tx.send(Msg::Unlock(answer));
        });
    }
}

impl Services {
    /// Runs what needs the pipeline, the session or the device.
    pub fn run_pipeline(&self, effect: PipelineEffect, tx: &UnboundedSender<Msg>) {
        match effect {
            PipelineEffect::ExecuteApproved(ids) => self.execute(ids, tx),
            PipelineEffect::SendToBatch(ids) => self.send_to_batch(ids, tx),
            PipelineEffect::RequestUnlock => self.request_unlock(tx),
            PipelineEffect::ConnectAccount(c) => self.connect(c, tx),
            PipelineEffect::ConnectRedirect(line) => self.connect_input(Some(line)),
            PipelineEffect::CancelConnect => self.connect_input(None),
        }
    }

    /// Performs what the Chat tab's machine asks; what the IO learns comes back as
    /// `Msg::Chat`.
    pub fn run_chat(&self, io: Io, tx: &UnboundedSender<Msg>) {
        let tx = tx.clone();
        self.chat.run(
            io,
            Arc::new(move |ev| {
                let _ = tx.send(Msg::Chat(ev));
            }),
        );
    }

    /// Waits until the chat's declines asked for so far are written.
    pub async fn settled(&self) {
        self.chat.settled().await;
    }

    /// Whether chat answers with the offline planner (no API key).
    pub fn offline_chat(&self) -> bool {
        self.chat.is_offline()
    }
}
