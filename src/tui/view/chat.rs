//! The Chat tab: conversation, folded tool calls, the inline step-up prompt, the CIBA
//! countdown, and the input line. Driven by `ChatTab` state only.

use crate::tui::app::{App, INPUT_GUARD_MS};
use crate::tui::chat::ChatLine;
use crate::tui::theme::Role;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let th = &app.theme;
    let c = &app.chat;
    let prompt_h = if c.step_up.is_some() || c.ciba.is_some() {
        5
    } else {
        0
    };
    let [conv, prompt, input] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(prompt_h),
        Constraint::Length(3),
    ])
    .areas(area);
    let mut lines: Vec<Line> = Vec::new();
    if c.lines.is_empty() {
        lines.push(Line::styled(
            "Ask the agent about your pipeline. Everything it proposes goes through the same consent gates.",
            th.style(Role::Muted),
        ));
    }
    for l in &c.lines {
        match l {
            ChatLine::User(t) => lines.push(Line::from(vec![
                Span::styled("you  ", th.style(Role::Accent)),
                Span::raw(t.clone()),
            ])),
            ChatLine::Assistant(t) => {
                for (i, part) in t.split('\n').enumerate() {
                    let who = if i == 0 { "agent " } else { "      " };
                    lines.push(Line::from(vec![
                        Span::styled(who, th.style(Role::Title)),
                        Span::raw(part.to_string()),
                    ]));
                }
            }
            ChatLine::Tool {
                name,
                summary,
                detail,
            } => {
                let arrow = if c.unfolded { "▾" } else { "▸" };
                lines.push(Line::styled(
                    format!("  {arrow} {name}: {summary}"),
                    th.style(Role::Muted),
                ));
                if c.unfolded {
                    lines.extend(
                        detail
                            .lines()
                            .map(|d| Line::styled(format!("      {d}"), th.style(Role::Muted))),
                    );
                }
            }
            ChatLine::System(t) => {
                lines.push(Line::styled(format!("  · {t}"), th.style(Role::Warn)))
            }
        }
    }
    if c.running {
        lines.push(Line::styled(
            "  … working (ctrl-c cancels)",
            th.style(Role::Muted),
        ));
    }
    // Keep the newest lines in view: counted as the rows they wrap to, not as lines, or
    // a long reply pushes its own end below the pane.
    let h = conv.height.saturating_sub(2) as usize;
    let para = Paragraph::new(lines).wrap(Wrap { trim: false });
    let rows = para.line_count(conv.width.saturating_sub(2));
    let back = c.scroll_back.min(rows.saturating_sub(h));
    let top = rows.saturating_sub(h).saturating_sub(back);
    f.render_widget(
        para.scroll((u16::try_from(top).unwrap_or(u16::MAX), 0))
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(th.style(Role::Border))
                    .title(Span::styled(
                        " Chat · f folds tool calls ",
                        th.style(Role::Title),
                    )),
            ),
        conv,
    );
    if let Some(s) = &c.step_up {
        let guard = app.now - s.opened_at < INPUT_GUARD_MS;
        let hint = if guard {
            "(wait…) y confirm · n refuse"
        } else {
            "y confirm · n refuse"
        };
        f.render_widget(
            Paragraph::new(vec![
                Line::raw(s.summary.clone()),
                Line::styled(hint, th.style(Role::Muted)),
            ])
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(th.style(Role::Warn))
                    .title(Span::styled(
                        " Step-up: confirm exactly this ",
                        th.style(Role::Warn),
                    )),
            ),
            prompt,
        );
    } else if let Some(w) = &c.ciba {
        let left = ((w.expires_at - app.now).max(0) + 999) / 1000;
        f.render_widget(
            Paragraph::new(vec![
                Line::raw(format!("\"{}\"", w.binding_message)),
                Line::styled(
                    format!(
                        "approve on your phone · {}:{:02} left · denied if it runs out",
                        left / 60,
                        left % 60
                    ),
                    th.style(Role::Warn),
                ),
            ])
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(th.style(Role::Warn))
                    .title(Span::styled(
                        " Waiting for your device (CIBA) ",
                        th.style(Role::Warn),
                    )),
            ),
            prompt,
        );
    }
    let (text, role) = if c.composing {
        (format!("{}▏", c.input), Role::Base)
    } else if c.input.is_empty() {
        (
            "i to type · enter sends · esc stops typing".to_string(),
            Role::Muted,
        )
    } else {
        (c.input.clone(), Role::Base)
    };
    f.render_widget(
        Paragraph::new(Line::styled(text, th.style(role))).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(th.style(if c.composing {
                    Role::Accent
                } else {
                    Role::Border
                })),
        ),
        input,
    );
}
