//! The Audit tab: the filterable log (virtualised), the selected entry's evidence, and
//! the chain verification status.

use super::{fit, fmt_ts};
use crate::tui::app::App;
use crate::tui::audit::VerifyState;
use crate::tui::keymap::{Command, Section};
use crate::tui::layout::window_start;
use crate::tui::theme::Role;
use ratatui::Frame;
use ratatui::layout::Rect;
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
    let [list, detail] = crate::tui::layout::audit_split(area);
    let title = format!(
        " Audit · {} of {} entries{} ",
        t.shown(),
        t.total,
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
    // Narrow terminals (80 columns on SSH) drop the surface and the year and seconds
    // before the event name is cut: what happened matters most.
    let wide = inner.width >= 110;
    let (time_w, surface_w) = if wide { (21, 15) } else { (12, 0) };
    let event_w = 26;
    let outcome_w = 8;
    let actor_w = usize::from(inner.width)
        .saturating_sub(6 + time_w + surface_w + event_w + outcome_w)
        .clamp(10, 26);
    let when = |ts: i64| {
        if wide {
            fmt_ts(ts)
        } else {
            chrono::DateTime::from_timestamp_millis(ts)
                .map_or_else(|| "?".into(), |t| t.format("%m-%d %H:%M").to_string())
        }
    };
    let header = format!(
        "{}{}{}{}{}{}",
        fit("seq", 6),
        fit("time (UTC)", time_w),
        fit("actor", actor_w),
        if wide {
            fit("surface", surface_w)
        } else {
            String::new()
        },
        fit("event", event_w),
        "outcome"
    );
    f.render_widget(
        Paragraph::new(Line::styled(header, th.style(Role::Muted))),
        Rect { height: 1, ..inner },
    );
    let mut rows = Rect {
        y: inner.y + 1,
        height: inner.height - 1,
        ..inner
    };
    // A search that read its budget says so on the list's last line: moving past the
    // end reads further.
    if let Some(more) = t.searched().filter(|_| rows.height > 1) {
        rows.height -= 1;
        f.render_widget(
            Paragraph::new(Line::styled(
                fit(&more, usize::from(rows.width)),
                th.style(Role::Muted),
            )),
            Rect {
                y: rows.y + rows.height,
                height: 1,
                ..rows
            },
        );
    }
    let h = rows.height as usize;
    let start = window_start(t.cursor, h);
    let lines: Vec<Line> = t.rows[start.min(t.rows.len())..(start + h).min(t.rows.len())]
        .iter()
        .enumerate()
        .map(|(off, e)| {
            let outcome_role = match e.outcome.as_str() {
                "ok" => Role::Ok,
                "denied" | "failed" => Role::Error,
                _ => Role::Warn,
            };
            let mut spans = vec![
                Span::raw(fit(&e.seq.to_string(), 6)),
                Span::raw(fit(&when(e.ts), time_w)),
                Span::raw(fit(&e.actor, actor_w)),
            ];
            if wide {
                spans.push(Span::raw(fit(
                    e.surface.map_or("-", |s| s.as_str()),
                    surface_w,
                )));
            }
            spans.push(Span::raw(fit(&e.event, event_w)));
            spans.push(Span::styled(e.outcome.clone(), th.style(outcome_role)));
            let mut line = Line::from(spans);
            if start + off == t.cursor {
                line = line.style(th.style(Role::Selected));
            }
            line
        })
        .collect();
    f.render_widget(Paragraph::new(lines), rows);

    let plain = |title: String| {
        Block::default()
            .borders(Borders::ALL)
            .border_style(th.style(Role::Border))
            .title(Span::styled(title, th.style(Role::Title)))
    };
    let Some(e) = t.current() else {
        t.evidence.set_room(0);
        f.render_widget(
            plain(
                " Evidence · / filter (surface: kind: outcome: actor:) · V verify · x export "
                    .into(),
            ),
            detail,
        );
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
            format!(
                "{} · hash {} ← prev {}",
                fmt_ts(e.ts),
                short(&e.hash),
                short(&e.prev_hash)
            ),
            th.style(Role::Muted),
        ),
    ];
    if let Some(s) = e.surface {
        l[1].spans.insert(
            0,
            Span::styled(format!("{} · ", s.as_str()), th.style(Role::Muted)),
        );
    }
    let json = serde_json::to_string_pretty(&e.detail).unwrap_or_default();
    l.extend(json.lines().map(|s| Line::raw(s.to_string())));
    // The evidence scrolls (J/K): a long detail (a reason chain, a batch) is read whole.
    let para = Paragraph::new(l).wrap(Wrap { trim: false });
    let inner_h = detail.height.saturating_sub(2);
    let inner_w = detail.width.saturating_sub(2);
    let room = u16::try_from(para.line_count(inner_w))
        .unwrap_or(u16::MAX)
        .saturating_sub(inner_h);
    let seq = e.seq.to_string();
    t.evidence.set_room(room);
    let key = |c| app.keymap.keys_for(Section::Audit, c);
    let title = match t.evidence.hint(
        &seq,
        room,
        (&key(Command::DetailDown), &key(Command::DetailUp)),
    ) {
        Some(h) => format!(" Evidence · {h} · / filter · V verify · x export "),
        None => " Evidence · / filter (surface: kind: outcome: actor:) · V verify · x export "
            .to_string(),
    };
    f.render_widget(
        para.scroll((t.evidence.offset(&seq).min(room), 0))
            .block(plain(title)),
        detail,
    );
}

fn short(h: &str) -> &str {
    &h[..12.min(h.len())]
}
