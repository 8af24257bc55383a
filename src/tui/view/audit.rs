//! The Audit tab: the filterable log (virtualised), the selected entry's evidence, and
//! the chain verification status.

use super::{fit, fmt_ts, window_start};
use crate::tui::app::App;
use crate::tui::audit::VerifyState;
use crate::tui::theme::Role;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let th = &app.theme;
    let t = &app.audit;
    let (verify, role) = match &t.verify {
        VerifyState::NotRun => ("chain: not verified yet (V)".to_string(), Role::Muted),
        VerifyState::Running => ("chain: verifying…".to_string(), Role::Warn),
        VerifyState::Verified { entries, at } => (
            format!("chain: ✓ {entries} entries verified at {}", fmt_ts(*at)),
            Role::Ok,
        ),
        VerifyState::Broken(b) => (format!("chain: ✗ BROKEN — {b}"), Role::Error),
        VerifyState::Failed(e) => (format!("chain: could not verify — {e}"), Role::Error),
    };
    let [list, detail] = split(area);
    let title = format!(
        " Audit · {} of {} entries{} ",
        t.visible.len(),
        t.entries.len(),
        if t.filter.is_empty() {
            String::new()
        } else {
            format!(" · filter \"{}\"", t.filter)
        }
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(th.style(Role::Border))
        .title(Span::styled(title, th.style(Role::Title)))
        .title_bottom(Span::styled(format!(" {verify} "), th.style(role)));
    let inner = block.inner(list);
    f.render_widget(block, list);
    if inner.height < 2 {
        return;
    }
    let header = format!(
        "{}{}{}{}{}{}",
        fit("seq", 6),
        fit("time (UTC)", 21),
        fit("actor", 26),
        fit("surface", 15),
        fit("event", 26),
        "outcome"
    );
    f.render_widget(
        Paragraph::new(Line::styled(header, th.style(Role::Muted))),
        Rect { height: 1, ..inner },
    );
    let rows = Rect {
        y: inner.y + 1,
        height: inner.height - 1,
        ..inner
    };
    let h = rows.height as usize;
    let start = window_start(t.cursor, h);
    let lines: Vec<Line> = t.visible[start.min(t.visible.len())..(start + h).min(t.visible.len())]
        .iter()
        .enumerate()
        .map(|(off, &i)| {
            let e = &t.entries[i];
            let outcome_role = match e.outcome.as_str() {
                "ok" => Role::Ok,
                "denied" | "failed" => Role::Error,
                _ => Role::Warn,
            };
            let mut line = Line::from(vec![
                Span::raw(fit(&e.seq.to_string(), 6)),
                Span::raw(fit(&fmt_ts(e.ts), 21)),
                Span::raw(fit(&e.actor, 26)),
                Span::raw(fit(e.surface.map_or("-", |s| s.as_str()), 15)),
                Span::raw(fit(&e.event, 26)),
                Span::styled(e.outcome.clone(), th.style(outcome_role)),
            ]);
            if start + off == t.cursor {
                line = line.style(th.style(Role::Selected));
            }
            line
        })
        .collect();
    f.render_widget(Paragraph::new(lines), rows);

    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(th.style(Role::Border))
        .title(Span::styled(
            " Evidence · / filter (surface: kind: outcome: actor:) · V verify · x export ",
            th.style(Role::Title),
        ));
    let Some(e) = t.current() else {
        f.render_widget(block, detail);
        return;
    };
    let mut l = vec![
        Line::from(vec![
            Span::styled(e.event.clone(), th.style(Role::Accent)),
            Span::raw(format!(
                "  #{} by {} · action {}",
                e.seq,
                e.actor,
                e.action_id.as_deref().unwrap_or("-")
            )),
        ]),
        Line::styled(
            format!("hash {} ← prev {}", short(&e.hash), short(&e.prev_hash)),
            th.style(Role::Muted),
        ),
    ];
    let json = serde_json::to_string_pretty(&e.detail).unwrap_or_default();
    l.extend(json.lines().map(|s| Line::raw(s.to_string())));
    f.render_widget(
        Paragraph::new(l).wrap(Wrap { trim: false }).block(block),
        detail,
    );
}

/// Log above, evidence below.
pub fn split(area: Rect) -> [Rect; 2] {
    Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area)
}

fn short(h: &str) -> &str {
    &h[..12.min(h.len())]
}
