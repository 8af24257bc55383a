//! The Permissions tab: every setting the consent engine reads, one row each.

use super::fit;
use crate::tui::app::App;
use crate::tui::permissions::rows;
use crate::tui::theme::Role;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let th = &app.theme;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(th.style(Role::Border))
        .title(Span::styled(
            " Permissions · every change is audited as you ",
            th.style(Role::Title),
        ));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let Some(p) = &app.perms.perms else {
        f.render_widget(Paragraph::new("loading…"), inner);
        return;
    };
    let mut lines = vec![
        Line::styled(
            format!("changes are recorded as {}", app.session.actor),
            th.style(Role::Muted),
        ),
        Line::raw(""),
    ];
    for (i, row) in rows().into_iter().enumerate() {
        let mut line = Line::from(vec![
            Span::raw(fit(&format!("  {}", row.label()), 38)),
            Span::styled(fit(&row.value(p), 22), th.style(Role::Accent)),
            Span::styled(row.help(), th.style(Role::Muted)),
        ]);
        if i == app.perms.cursor {
            line = line.style(th.style(Role::Selected));
        }
        lines.push(line);
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "h/l change · enter edit a typed value · the agent can never change these",
        th.style(Role::Muted),
    ));
    f.render_widget(Paragraph::new(lines), inner);
}
