//! The lock screen: nothing of the session but whose it is.

use super::super::app::App;
use super::super::theme::Role;
use super::fmt_ts;
use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let th = &app.theme;
    let lock = &app.lock;
    let since = lock.locked_at.map(fmt_ts).unwrap_or_default();
    let idle = lock.idle_ms.unwrap_or(0);
    let idle = if idle < 60_000 {
        format!("{} s", idle / 1000)
    } else {
        format!("{} min", idle / 60_000)
    };
    let mut lines = vec![
        Line::from(Span::styled("dealflow is locked", th.style(Role::Accent))),
        Line::from(""),
        Line::from(format!(
            "{} · locked {since} after {idle} without input",
            app.session.actor
        )),
        Line::from(""),
        Line::from(vec![
            Span::styled("enter", th.style(Role::Accent)),
            Span::raw(" unlock · "),
            Span::styled("q", th.style(Role::Accent)),
            Span::raw(" quit"),
        ]),
        Line::from(Span::styled(
            "signed in, unlocking takes a yes on your phone",
            th.style(Role::Muted),
        )),
    ];
    if let Some(note) = &lock.note {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(note.clone(), th.style(Role::Warn))));
    }
    let h = (lines.len() as u16 + 2).min(area.height);
    let w = 72.min(area.width);
    let boxed = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(
        Paragraph::new(lines)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true })
            .block(Block::default().borders(Borders::ALL)),
        boxed,
    );
}
