//! The message line (status text, or the filter being typed) and the status bar (user,
//! SANDBOX or tenant, store, pending consents, the outbox).

use crate::tui::app::{App, Level, Tab};
use crate::tui::keymap::{Command, Section};
use crate::tui::theme::Role;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub fn render_message(app: &App, f: &mut Frame, area: Rect) {
    let th = &app.theme;
    let line = if app.filtering {
        let filter = match app.tab {
            Tab::Audit => &app.audit.filter,
            _ => &app.actions.filter,
        };
        Line::from(vec![
            Span::styled("/", th.style(Role::Accent)),
            Span::raw(format!("{filter}▏")),
            Span::styled("   enter keep · esc clear", th.style(Role::Muted)),
        ])
    } else if let Some((level, text)) = &app.status {
        let role = match level {
            Level::Info => Role::Base,
            Level::Ok => Role::Ok,
            Level::Warn => Role::Warn,
            Level::Error => Role::Error,
        };
        Line::styled(text.clone(), th.style(role))
    } else {
        Line::raw("")
    };
    f.render_widget(Paragraph::new(line), area);
}

pub fn render_bar(app: &App, f: &mut Frame, area: Rect) {
    let th = &app.theme;
    let s = &app.session;
    let mode = if s.sandbox {
        Span::styled(" SANDBOX ", th.style(Role::Sandbox))
    } else {
        let t = s.tenant.as_deref().unwrap_or("no tenant configured");
        Span::styled(format!(" tenant {t} "), th.style(Role::StatusBar))
    };
    let pending = app.actions.pending_count();
    // What needs the person (the outbox, nudges, pending consents) comes first; who and
    // where come after, and the store path is the first thing a narrow terminal cuts.
    let mut urgent: Vec<Span> = Vec::new();
    // Seen from every tab: something is about to leave and can still be taken back.
    if !app.outbox.is_empty() {
        let undo = app.keymap.keys_for(Section::Actions, Command::UndoSend);
        urgent.push(Span::styled(
            format!(" outbox {} · {undo} undo ", app.outbox.len()),
            th.style(Role::Warn),
        ));
    }
    let mut spans = vec![
        Span::styled(format!(" {} ", s.actor), th.style(Role::StatusBar)),
        mode,
        Span::styled(
            format!(
                " {pending} pending consent{} ",
                if pending == 1 { "" } else { "s" }
            ),
            th.style(Role::StatusBar),
        ),
    ];
    let nudges = app.trust.nudges().len();
    if nudges > 0 {
        let key = app.keymap.keys_for(Section::Actions, Command::Trust);
        spans.push(Span::styled(
            format!(
                " {nudges} nudge{} · {key} ",
                if nudges == 1 { "" } else { "s" }
            ),
            th.style(Role::Accent),
        ));
    }
    // A team lead sees what waits on their phone (answered there; `dealflow actions list
    // --for-team` lists it).
    if app.lead_waiting > 0 {
        spans.push(Span::styled(
            format!(" {} on your phone as lead ", app.lead_waiting),
            th.style(Role::Warn),
        ));
    }
    // The background service (`dealflow service install`): that it runs, and when it
    // last filed something, so a rep opening the TUI sees the agent kept working.
    match app.service {
        Some((true, proposed)) => {
            let when = proposed.map_or_else(
                || "running".to_string(),
                |t| format!("proposed {}", clock_time(t, app.utc_offset_s)),
            );
            spans.push(Span::styled(
                format!(" service · {when} "),
                th.style(Role::StatusBar),
            ));
        }
        Some((false, _)) => spans.push(Span::styled(" service down ", th.style(Role::Warn))),
        None => {}
    }
    let used: usize = urgent
        .iter()
        .chain(spans.iter())
        .map(|s| s.content.chars().count())
        .sum();
    let room = (area.width as usize).saturating_sub(used);
    let store = format!(" store {} ", s.store);
    if room >= 10 {
        spans.push(Span::styled(
            super::fit(&store, room),
            th.style(Role::StatusBar),
        ));
    }
    urgent.extend(spans);
    let spans = urgent;
    f.render_widget(
        Paragraph::new(Line::from(spans)).style(th.style(Role::StatusBar)),
        area,
    );
}

/// `14:02` in the person's offset.
fn clock_time(ms: crate::core::domain::Millis, utc_offset_s: i32) -> String {
    let t = crate::tui::editor::local_time(ms, utc_offset_s);
    t.split_whitespace().nth(1).unwrap_or(&t).to_string()
}
