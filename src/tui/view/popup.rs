//! Popups: help (generated from the keymap), the step-up confirmation, reject reason,
//! bulk approval summary, command palette, draft editor with diff, typed permission
//! values.

use super::actions::diff_view;
use super::fit;
use crate::tui::app::{App, INPUT_GUARD_MS, Popup};
use crate::tui::layout::{bulk_body, bulk_geometry, centered, step_up_geometry, step_up_text};
use crate::tui::theme::Role;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

pub(super) fn frame<'a>(app: &App, title: &'a str, role: Role) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.style(role))
        .style(app.theme.style(Role::Popup))
        .title(Span::styled(title, app.theme.style(Role::Title)))
}

fn guard_hint(app: &App, opened_at: i64) -> Option<Line<'static>> {
    (app.now - opened_at < INPUT_GUARD_MS).then(|| {
        Line::styled(
            "(input guard: keys are ignored for 1 s — esc cancels)",
            app.theme.style(Role::Warn),
        )
    })
}

fn step_up_body(app: &App, id: &str, lines: &[String], gate: &str) -> Vec<Line<'static>> {
    let th = &app.theme;
    let text = step_up_text(id, lines, gate);
    let last = text.len() - 1;
    text.into_iter()
        .enumerate()
        .map(|(i, s)| match i {
            0 => Line::styled(s, th.style(Role::Accent)),
            i if i == last => Line::styled(s, th.style(Role::Muted)),
            _ => Line::raw(s),
        })
        .collect()
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let Some(p) = &app.popup else {
        return;
    };
    let th = &app.theme;
    match p {
        Popup::Help { scroll } => {
            let r = centered(area, 76, area.height.saturating_sub(4));
            let mut lines = Vec::new();
            let mut last = None;
            for row in app.keymap.help() {
                if last != Some(row.section) {
                    lines.push(Line::styled(
                        format!("[{}]", row.section.name()),
                        th.style(Role::Title),
                    ));
                    last = Some(row.section);
                }
                lines.push(Line::from(vec![
                    Span::styled(
                        fit(&format!("  {}", row.keys.join(" ")), 22),
                        th.style(Role::Accent),
                    ),
                    Span::raw(fit(&row.desc, 46)),
                ]));
            }
            let body = r.height.saturating_sub(2) as usize;
            let scroll = (*scroll).min(lines.len().saturating_sub(body));
            let lines: Vec<Line> = lines.into_iter().skip(scroll).collect();
            f.render_widget(Clear, r);
            f.render_widget(
                Paragraph::new(lines).block(frame(
                    app,
                    " Keys (from keymap.toml) · j/k g/G scroll · esc ",
                    Role::Border,
                )),
                r,
            );
        }
        Popup::StepUp {
            id,
            version: _,
            lines,
            gate,
            opened_at,
            scroll,
        } => {
            let (r, rows, shown) = step_up_geometry(id, lines, gate, area);
            let more = rows.saturating_sub(scroll + shown);
            let hint = guard_hint(app, *opened_at).unwrap_or_else(|| {
                let text = if more > 0 {
                    format!("{more} more row(s): j / space / G to read on · n / esc cancel")
                } else {
                    "y approve exactly this · n / esc cancel (enter does nothing here)".into()
                };
                Line::styled(text, th.style(Role::Warn))
            });
            let title = if rows > shown {
                format!(
                    " Step-up confirmation · rows {}-{} of {rows} ",
                    scroll + 1,
                    (scroll + shown).min(rows)
                )
            } else {
                " Step-up confirmation ".to_string()
            };
            f.render_widget(Clear, r);
            let block = frame(app, &title, Role::Warn);
            let inner = block.inner(r);
            f.render_widget(block, r);
            let [body, keys] =
                Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
            f.render_widget(
                Paragraph::new(step_up_body(app, id, lines, gate))
                    .wrap(Wrap { trim: false })
                    .scroll((u16::try_from(*scroll).unwrap_or(u16::MAX), 0)),
                body,
            );
            f.render_widget(Paragraph::new(hint), keys);
        }
        Popup::Reject { ids, reason, .. } => {
            let r = centered(area, 64, 8);
            let what = if ids.len() == 1 {
                ids[0].clone()
            } else {
                format!("{} actions", ids.len())
            };
            f.render_widget(Clear, r);
            f.render_widget(
                Paragraph::new(vec![
                    Line::raw(format!(
                        "Reject {what}. Reason (optional, the agent learns from it):"
                    )),
                    Line::styled(format!("> {reason}▏"), th.style(Role::Accent)),
                    Line::raw(""),
                    Line::styled("enter reject · esc cancel", th.style(Role::Muted)),
                ])
                .wrap(Wrap { trim: false })
                .block(frame(app, " Reject ", Role::Border)),
                r,
            );
        }
        Popup::Bulk {
            plan,
            typed,
            opened_at,
            scroll,
        } => {
            let (r, rows, shown) = bulk_geometry(&app.theme, &app.actions, plan, area);
            let title = if rows > shown {
                format!(
                    " Approve marked · rows {}-{} of {rows} ",
                    scroll + 1,
                    (scroll + shown).min(rows)
                )
            } else {
                " Approve marked ".to_string()
            };
            f.render_widget(Clear, r);
            let block = frame(app, &title, Role::Warn);
            let inner = block.inner(r);
            f.render_widget(block, r);
            let [body, keys] =
                Layout::vertical([Constraint::Min(1), Constraint::Length(2)]).areas(inner);
            f.render_widget(
                Paragraph::new(bulk_body(&app.theme, &app.actions, plan))
                    .wrap(Wrap { trim: false })
                    .scroll((u16::try_from(*scroll).unwrap_or(u16::MAX), 0)),
                body,
            );
            let more = rows.saturating_sub(scroll + shown);
            let mut foot = vec![Line::from(vec![
                Span::raw(format!(
                    "Type {} and press enter to approve: ",
                    plan.approvable.len()
                )),
                Span::styled(format!("{typed}▏"), th.style(Role::Accent)),
            ])];
            foot.push(guard_hint(app, *opened_at).unwrap_or_else(|| {
                let text = if more > 0 {
                    format!("{more} more row(s): j / space / G to read on · esc cancels")
                } else {
                    "esc cancels".to_string()
                };
                Line::styled(text, th.style(Role::Muted))
            }));
            f.render_widget(Paragraph::new(foot), keys);
        }
        Popup::Palette { query, selected } => {
            let items = app.palette_items(query);
            let r = centered(area, 70, 16);
            let mut l = vec![Line::styled(format!(": {query}▏"), th.style(Role::Accent))];
            let h = r.height.saturating_sub(3) as usize;
            let start = super::window_start(*selected, h.max(1));
            for (i, it) in items.iter().enumerate().skip(start).take(h) {
                let mut line = Line::raw(fit(&it.label(), 66));
                if i == *selected {
                    line = line.style(th.style(Role::Selected));
                }
                l.push(line);
            }
            f.render_widget(Clear, r);
            f.render_widget(
                Paragraph::new(l).block(frame(
                    app,
                    " Command palette · enter run · esc ",
                    Role::Border,
                )),
                r,
            );
        }
        Popup::Editor(ed) => {
            let r = centered(
                area,
                area.width.saturating_sub(4),
                area.height.saturating_sub(4),
            );
            f.render_widget(Clear, r);
            let block = frame(
                app,
                " Edit draft · ctrl-s save · esc discard · ctrl-z/y undo/redo · ctrl-f find · ctrl-n next · ctrl-w wrap ",
                Role::Accent,
            );
            let inner = block.inner(r);
            f.render_widget(block, r);
            let [body, foot] =
                Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(inner);
            let [left, right] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(body);
            f.render_widget(&ed.textarea, left);
            let mut d = vec![Line::styled(
                "Diff against the AI's original",
                th.style(Role::Title),
            )];
            d.extend(diff_view(th, &ed.diff()));
            f.render_widget(
                Paragraph::new(d).wrap(Wrap { trim: false }).block(
                    Block::default()
                        .borders(Borders::LEFT)
                        .border_style(th.style(Role::Border)),
                ),
                right,
            );
            let foot_line = if let Some(q) = &ed.search {
                Line::styled(format!("find: {q}▏"), th.style(Role::Accent))
            } else if let Some(e) = &ed.error {
                Line::styled(e.clone(), th.style(Role::Error))
            } else {
                Line::styled(
                    format!(
                        "editing {} · saving voids any consent and re-gates it",
                        ed.id
                    ),
                    th.style(Role::Muted),
                )
            };
            f.render_widget(Paragraph::new(foot_line), foot);
        }
        Popup::PermValue { row, text } => {
            let r = centered(area, 64, 8);
            f.render_widget(Clear, r);
            // The help can be longer than a line (the pins row explains what it takes).
            f.render_widget(
                Paragraph::new(vec![
                    Line::raw(row.label()),
                    Line::styled(row.help(), th.style(Role::Muted)),
                    Line::styled(format!("> {text}▏"), th.style(Role::Accent)),
                    Line::styled("enter save · esc cancel", th.style(Role::Muted)),
                ])
                .wrap(Wrap { trim: false })
                .block(frame(app, " Change permission ", Role::Border)),
                r,
            );
        }
        Popup::Trust { cursor, .. } => render_trust(app, f, area, *cursor),
        Popup::Calibration { kind } => super::calibration::render(app, f, area, *kind),
        Popup::NeedsAccount { connection, what } => {
            let r = centered(area, 100, 8);
            f.render_widget(Clear, r);
            f.render_widget(
                Paragraph::new(vec![
                    Line::raw(format!("{what} needs {}.", connection.as_str())),
                    Line::raw(format!(
                        "{} is disconnected in dealflow, so approving it now would only fail when it runs.",
                        connection.as_str()
                    )),
                    Line::raw(""),
                    Line::styled(
                        "c connect it now (then a approves) · esc leave it pending",
                        th.style(Role::Accent),
                    ),
                ])
                .wrap(Wrap { trim: false })
                .block(frame(app, " Account needed ", Role::Warn)),
                r,
            );
        }
        Popup::Connect {
            connection,
            url,
            pasted,
        } => {
            let r = centered(area, 100, 12);
            f.render_widget(Clear, r);
            let (link, plan) = match url {
                Some((u, plan)) => (
                    Line::styled(u.clone(), th.style(Role::Accent)),
                    Line::styled(plan.clone(), th.style(Role::Muted)),
                ),
                None => (
                    Line::styled("asking Auth0 for a connect link…", th.style(Role::Muted)),
                    Line::raw(""),
                ),
            };
            f.render_widget(
                Paragraph::new(vec![
                    Line::raw(format!("Open this in a browser to connect {}:", connection.as_str())),
                    link,
                    plan,
                    Line::raw(""),
                    Line::raw("Waiting for the redirect. Browser on another machine (SSH)? Paste the address it ends on:"),
                    Line::styled(format!("> {pasted}▏"), th.style(Role::Accent)),
                    Line::styled("ctrl-y copy the link · enter send the pasted address · esc cancel", th.style(Role::Muted)),
                ])
                .wrap(ratatui::widgets::Wrap { trim: false })
                .block(frame(app, " Connect account ", Role::Border)),
                r,
            );
        }
    }
}

fn render_trust(app: &App, f: &mut Frame, area: Rect, cursor: usize) {
    use crate::tui::trust::TrustItem;
    let th = &app.theme;
    let r = centered(area, 100, area.height.saturating_sub(4).min(26));
    let items = app.trust.items(app.perms.perms.as_ref());
    let nudges = items
        .iter()
        .filter(|i| matches!(i, TrustItem::Nudge(_)))
        .count();
    let mut lines = vec![Line::styled("Nudges", th.style(Role::Title))];
    let mut cursor_line = 0;
    if app.trust.latest.is_none() {
        lines.push(Line::styled(
            "replaying the audit log…",
            th.style(Role::Muted),
        ));
    } else if nudges == 0 {
        lines.push(Line::styled(
            "none: 5 unedited approvals in a row of similar actions at ≥ 0.90 raise one",
            th.style(Role::Muted),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        if i == nudges {
            lines.push(Line::raw(""));
            lines.push(Line::styled(
                "Auto-approve rules (each expires; calibration never makes one)",
                th.style(Role::Title),
            ));
        }
        let text = match item {
            TrustItem::Nudge(n) => n.text.clone(),
            TrustItem::Rule(rule) if rule.paused.is_some() => format!(
                "{} to {} at ≥ {:.2} · PAUSED: {} · r resume · x revoke",
                rule.kind,
                rule.target,
                rule.min_confidence,
                rule.paused
                    .as_ref()
                    .map(|p| p.describe())
                    .unwrap_or_default(),
            ),
            TrustItem::Rule(rule) => format!(
                "{} to {} at ≥ {:.2} · {} hit{} · {} {}",
                rule.kind,
                rule.target,
                rule.min_confidence,
                app.trust.hits(&rule.id),
                if app.trust.hits(&rule.id) == 1 {
                    ""
                } else {
                    "s"
                },
                if rule.active_at(app.now) {
                    "until"
                } else {
                    "expired"
                },
                super::fmt_ts(rule.expires_at),
            ),
        };
        if i == cursor {
            cursor_line = lines.len();
        }
        // Wrapped, not cut: the end of a nudge says what it is based on.
        let width = usize::from(r.width.saturating_sub(4)).max(20);
        for (k, part) in super::wrap_words(&text, width).into_iter().enumerate() {
            let mark = match (k, i == cursor) {
                (0, true) => "▸",
                _ => " ",
            };
            let line = Line::raw(format!("{mark} {part}"));
            lines.push(if i == cursor {
                line.style(th.style(Role::Selected))
            } else {
                line
            });
        }
    }
    if nudges == items.len() {
        lines.push(Line::raw(""));
        lines.push(Line::styled("Auto-approve rules", th.style(Role::Title)));
        lines.push(Line::styled("none", th.style(Role::Muted)));
    }
    if let Some(c) = &app.trust.latest {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            "Track record (approvals per kind and confidence band)",
            th.style(Role::Title),
        ));
        for l in c.calibration.report().into_iter().take(8) {
            lines.push(Line::raw(format!("  {l}")));
        }
    }
    let body = r.height.saturating_sub(3) as usize;
    // Keep the cursor's row in view on a short terminal.
    let skip = (cursor_line + 1).saturating_sub(body);
    let mut shown: Vec<Line> = lines.into_iter().skip(skip).take(body).collect();
    shown.resize(body, Line::raw(""));
    shown.push(Line::styled(
        "enter accept (a rule for 30 days) · d dismiss · x revoke a rule · esc close",
        th.style(Role::Muted),
    ));
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(shown).block(frame(
            app,
            " Trust · calibration only suggests; accepting is your change, audited ",
            Role::Border,
        )),
        r,
    );
}
