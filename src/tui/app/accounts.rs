//! Permissions-tab work on accounts and values: connecting an account (the link, the
//! pasted redirect, how it ended) and stepping a value up or down.

use super::*;
use crate::tui::msg::Effect;
use crate::tui::msg::{PipelineEffect, StoreEffect};
use crate::tui::permissions::{PermRow, rows as perm_rows};

impl App {
    pub(super) fn connect_row(&mut self) -> Vec<Effect> {
        if self.tab != Tab::Permissions {
            return vec![];
        }
        match perm_rows().get(self.perms.cursor).copied() {
            Some(PermRow::Account(connection)) => {
                self.popup = Some(Popup::Connect {
                    connection,
                    url: None,
                    pasted: String::new(),
                });
                vec![Effect::Pipeline(PipelineEffect::ConnectAccount(connection))]
            }
            _ => {
                self.set_status(Level::Info, "c connects: move to an account row");
                vec![]
            }
        }
    }

    pub(super) fn on_connect(&mut self, ev: crate::tui::msg::ConnectEvent) -> Vec<Effect> {
        use crate::tui::msg::ConnectEvent;
        match ev {
            ConnectEvent::Link {
                connection,
                url,
                plan,
            } => {
                if let Some(Popup::Connect {
                    connection: c,
                    url: u,
                    ..
                }) = &mut self.popup
                    && *c == connection
                {
                    *u = Some((url, plan));
                }
                vec![]
            }
            ConnectEvent::Done { connection, result } => {
                if matches!(self.popup, Some(Popup::Connect { .. })) {
                    self.popup = None;
                }
                match result {
                    Ok(line) => {
                        self.set_status(Level::Ok, line);
                        // Connected at Auth0: dealflow's own switch follows (audited).
                        let off = self
                            .perms
                            .perms
                            .as_ref()
                            .is_some_and(|p| p.disconnected.contains(&connection));
                        if off {
                            return vec![Effect::Store(StoreEffect::ChangePermissions(
                                crate::core::permissions::PermissionChange::SetConnected {
                                    connection,
                                    connected: true,
                                },
                            ))];
                        }
                    }
                    Err(e) => self.set_status(Level::Error, e),
                }
                vec![Effect::Store(StoreEffect::LoadActions)]
            }
        }
    }

    pub(super) fn perm_step(&mut self, up: bool) -> Vec<Effect> {
        if self.tab != Tab::Permissions {
            return vec![];
        }
        let Some(p) = &self.perms.perms else {
            return vec![];
        };
        let Some(row) = perm_rows().get(self.perms.cursor).copied() else {
            return vec![];
        };
        if row.typed() {
            self.popup = Some(Popup::PermValue {
                row,
                text: String::new(),
            });
            return vec![];
        }
        let Some(change) = row.step(p, up) else {
            return vec![];
        };
        // Shown as it will be at once, so the next key steps from here: `l l l` is three
        // steps, not the same step three times. The store's answer (and the reload after
        // it) is still what counts; a refused change comes back as it was.
        let mut shown = p.clone();
        if shown.apply(&change).is_ok() {
            self.perms.perms = Some(shown);
        }
        vec![Effect::Store(StoreEffect::ChangePermissions(change))]
    }
}
