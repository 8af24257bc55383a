//! `dealflow batch [--every 15m]`: one device push for everything queued for device
//! consent, executed inside the grant's lifetime.

use super::{Ctx, exec};
use crate::runtime::batch::{BatchOptions, run_once};
use anyhow::{Context, Result};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

pub fn run(ctx: &Ctx, every: Option<String>) -> Result<ExitCode> {
    let every = every
        .map(|e| {
            crate::config::parse_duration(&e)
                .filter(|d| d.as_secs() >= 60)
                .with_context(|| {
                    format!("--every {e:?}: give a duration of at least 1m, like 15m or 1h")
                })
        })
        .transpose()?;
    let rt = exec::runtime()?;
    rt.block_on(async {
        let wired = exec::wire(ctx).await?;
        if let Some(url) = &wired.sandbox_url {
            eprintln!("sandbox ({url}): approve on the phone: `dealflow sandbox phone` in another terminal");
        }
        let opts = BatchOptions {
            window: ctx.config.batch_window,
            concurrency: ctx.config.raw.batch.concurrency as usize,
            actor: super::local_actor(),
            ..Default::default()
        };
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        });
        let pipeline = wired.pipeline.clone();
        loop {
            let report = run_once(pipeline.clone(), wired.device.as_ref(), &opts, &cancel).await?;
            if let Some(holder) = &report.elsewhere {
                println!(
                    "another dealflow ({holder}) is gathering the device queue right now; nothing sent, so nothing is pushed twice"
                );
            } else if report.requests == 0 {
                println!("nothing queued for device consent");
            }
            for m in &report.binding_messages {
                println!("asked the device: {m}");
            }
            println!("{}", report.counts());
            let Some(every) = every else { break };
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = cancel.cancelled() => break,
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
