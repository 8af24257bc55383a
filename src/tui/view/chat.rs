//! The Chat tab: conversation, folded tool calls, the inline step-up prompt, the CIBA
//! countdown, and the input line. Driven by `ChatTab` state only.

use crate::tui::app::{App, INPUT_GUARD_MS};
use crate::tui::chat::ChatLine;
use crate::tui::layout::{INPUT_H, payload_lines, step_up_fit};
use crate::tui::theme::Role;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

/// Splits `text` at its newlines, the first line prefixed by `head` and the rest by as
/// many spaces: a newline in a message, a tool summary or a pasted prompt starts a row
/// instead of vanishing.
fn prefixed(head: &str, text: &str, role: Role, app: &App) -> Vec<Line<'static>> {
    let th = &app.theme;
    let pad = " ".repeat(head.chars().count());
    text.split('\n')
        .enumerate()
        .map(|(i, part)| {
            let lead = if i == 0 {
                head.to_string()
            } else {
                pad.clone()
            };
            Line::styled(format!("{lead}{part}"), th.style(role))
        })
        .collect()
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let th = &app.theme;
    let c = &app.chat;
    let fit = c.step_up.as_ref().map(|s| step_up_fit(&s.summary, area));
    let prompt_h = match (&fit, &c.ciba) {
        (Some(fit), _) => fit.height,
        (None, Some(_)) => 5,
        (None, None) => 0,
    };
    // Min(0): the prompt gets exactly the rows `step_up_fit` promised the model.
    let [conv, prompt, input] = Layout::vertical([
        Constraint::Min(0),
        Constraint::Length(prompt_h),
        Constraint::Length(INPUT_H),
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
            ChatLine::User(t) => {
                for (i, part) in t.split('\n').enumerate() {
                    let who = if i == 0 { "you  " } else { "     " };
                    lines.push(Line::from(vec![
                        Span::styled(who, th.style(Role::Accent)),
                        Span::raw(part.to_string()),
                    ]));
                }
            }
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
                lines.extend(prefixed(
                    &format!("  {arrow} {name}: "),
                    summary,
                    Role::Muted,
                    app,
                ));
                if c.unfolded {
                    lines.extend(
                        detail
                            .lines()
                            .map(|d| Line::styled(format!("      {d}"), th.style(Role::Muted))),
                    );
                }
            }
            ChatLine::System(t) => lines.extend(prefixed("  · ", t, Role::Warn, app)),
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
    if let (Some(s), Some(fit)) = (&c.step_up, fit) {
        let guard = app.now - s.opened_at < INPUT_GUARD_MS;
        let more = fit.rows.saturating_sub(s.scroll + fit.shown);
        let hint = match (guard, more) {
            (true, _) => "(wait…) y confirm · n refuse".to_string(),
            (false, 0) => "y confirm · n refuse".to_string(),
            (false, n) => format!("{n} more row(s): j / space / G to read on · n refuse"),
        };
        let title = if fit.rows > fit.shown {
            format!(
                " Step-up: confirm exactly this · rows {}-{} of {} ",
                s.scroll + 1,
                (s.scroll + fit.shown).min(fit.rows),
                fit.rows
            )
        } else {
            " Step-up: confirm exactly this ".to_string()
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(th.style(Role::Warn))
            .title(Span::styled(title, th.style(Role::Warn)));
        let inner = block.inner(prompt);
        f.render_widget(block, prompt);
        let [body, keys] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
        f.render_widget(
            Paragraph::new(payload_lines(&s.summary))
                .wrap(Wrap { trim: false })
                .scroll((u16::try_from(s.scroll).unwrap_or(u16::MAX), 0)),
            body,
        );
        f.render_widget(
            Paragraph::new(Line::styled(hint, th.style(Role::Muted))),
            keys,
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
