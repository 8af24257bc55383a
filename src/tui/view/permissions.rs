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
    let header = vec![
        Line::styled(
            format!("changes are recorded as {}", app.session.actor),
            th.style(Role::Muted),
        ),
        Line::raw(""),
    ];
    let footer = Line::styled(
        "h/l change · enter edit a typed value · the agent can never change these",
        th.style(Role::Muted),
    );
    // On a narrow terminal the label and value columns shrink before the help does not
    // fit at all; the help of the selected row is repeated in the footer so it is never
    // lost.
    let wide = inner.width >= 100;
    let all = rows();
    // Narrow: no help column, so the label takes what its longest needs and the value
    // the rest (at 80 columns neither `autonomy · list_slack_channels` nor the budgets
    // are cut).
    let (label_w, value_w) = if wide {
        (38, 22)
    } else {
        let longest = all
            .iter()
            .map(|r| r.label().chars().count() + 3)
            .max()
            .unwrap_or(24);
        let label_w = longest.min(usize::from(inner.width) / 2);
        (label_w, usize::from(inner.width).saturating_sub(label_w))
    };
    let cursor = app.perms.cursor.min(all.len().saturating_sub(1));
    // Narrow: the selected row's help, wrapped (up to three lines) rather than cut, and
    // before it its value in full when the column had to cut it (the budgets).
    let help: Vec<String> = if wide {
        vec![]
    } else {
        let width = usize::from(inner.width);
        let value = all[cursor].value(p);
        let mut lines = Vec::new();
        if value.chars().count() > value_w {
            lines.extend(super::wrap_words(&value, width).into_iter().take(3));
        }
        lines.extend(
            super::wrap_words(all[cursor].help(), width)
                .into_iter()
                .take(3),
        );
        lines
    };
    let below = if wide { 2 } else { 1 + help.len() };
    let body = (inner.height as usize)
        .saturating_sub(header.len() + below)
        .max(1);
    // Every row reachable: the window follows the cursor.
    let first = cursor.saturating_sub(body.saturating_sub(1));
    let mut lines = header;
    for (i, row) in all.iter().enumerate().skip(first).take(body) {
        let mut spans = vec![
            Span::raw(fit(
                &format!("  {}", row.label()),
                label_w.saturating_sub(1),
            )),
            Span::raw(" "),
            Span::styled(fit(&row.value(p), value_w), th.style(Role::Accent)),
        ];
        if wide {
            spans.push(Span::styled(row.help(), th.style(Role::Muted)));
        }
        let mut line = Line::from(spans);
        if i == cursor {
            line = line.style(th.style(Role::Selected));
        }
        lines.push(line);
    }
    while lines.len() < body + 2 {
        lines.push(Line::raw(""));
    }
    let more = if first + body < all.len() {
        format!("↓ {} more · ", all.len() - first - body)
    } else {
        String::new()
    };
    if wide {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!("{more}{}", footer),
            th.style(Role::Muted),
        ));
    } else {
        for h in help {
            lines.push(Line::styled(h, th.style(Role::Muted)));
        }
        // Short enough to keep "↓ N more" on 80 columns.
        lines.push(Line::styled(
            format!("{more}h/l change · enter edits · the agent can never change these"),
            th.style(Role::Muted),
        ));
    }
    f.render_widget(Paragraph::new(lines), inner);
}
