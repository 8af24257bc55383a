//! Where things go on the screen, shared by the model and the view: the screen's bands,
//! each tab's split, the list rows a click lands on, and how much of a payload a
//! confirmation box shows at a given size. `App::update` asks these before it takes a
//! click or a `y` ("confirm exactly this" waits until every row was on screen); `view`
//! draws with the same numbers. Depends on the tab states and the theme, never on `app`
//! or `view`, so neither depends on the other through it.

use crate::tui::actions::{ActionsTab, BulkPlan, what_will_happen};
use crate::tui::tab::Tab;
use crate::tui::theme::{Role, Theme};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

/// Tab bar, body, message line, status bar.
pub fn screen_layout(area: Rect) -> [Rect; 4] {
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// The first list row's screen area for a tab with a bordered list and a header line
/// (Actions, Audit), so a mouse click can be mapped to a row without rendering.
pub fn list_rows(tab: Tab, area: Rect) -> Option<Rect> {
    let [_, body, _, _] = screen_layout(area);
    let list = match tab {
        Tab::Actions => actions_split(body)[0],
        Tab::Audit => audit_split(body)[0],
        _ => return None,
    };
    let inner = Rect {
        x: list.x + 1,
        y: list.y + 2,
        width: list.width.saturating_sub(2),
        height: list.height.saturating_sub(3),
    };
    (inner.height > 0).then_some(inner)
}

/// The first row of a window of `height` rows that keeps `cursor` visible (paging).
pub fn window_start(cursor: usize, height: usize) -> usize {
    if height == 0 {
        return 0;
    }
    (cursor / height) * height
}

/// Queue above, detail below.
pub fn actions_split(area: Rect) -> [Rect; 2] {
    Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area)
}

/// Log above, evidence below.
pub fn audit_split(area: Rect) -> [Rect; 2] {
    Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area)
}

/// Rows of the Chat body kept for the input box and a glimpse of the conversation.
pub const INPUT_H: u16 = 3;

pub const MIN_CONVERSATION_H: u16 = 4;

/// How the step-up box fits the Chat body: its height, the payload's rows once wrapped,
/// and how many of them it shows at a time. The view draws with it and the model uses
/// it to hold `y` until the last row has been shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepUpFit {
    pub height: u16,
    pub rows: usize,
    pub shown: usize,
}

pub fn payload_lines(summary: &str) -> Vec<Line<'static>> {
    summary
        .split('\n')
        .map(|l| Line::raw(l.to_string()))
        .collect()
}

pub fn step_up_fit(summary: &str, body: Rect) -> StepUpFit {
    let inner_w = body.width.saturating_sub(2);
    let rows = Paragraph::new(payload_lines(summary))
        .wrap(Wrap { trim: false })
        .line_count(inner_w);
    // The conversation keeps a few rows when there is room; on a short terminal the
    // box takes them too. Borders and the key hint take three rows; what is left may
    // be nothing, and then nothing can be confirmed (the model checks `shown`).
    let avail = body.height.saturating_sub(INPUT_H);
    let room = if avail >= MIN_CONVERSATION_H + 4 {
        avail - MIN_CONVERSATION_H
    } else {
        avail
    };
    let height = (rows as u16).saturating_add(3).min(room);
    StepUpFit {
        height,
        rows,
        shown: usize::from(height.saturating_sub(3)),
    }
}

pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// What the Actions-tab step-up confirms, without its key line: a heading, the
/// payload, the gate.
pub fn step_up_text(id: &str, lines: &[String], gate: &str) -> Vec<String> {
    let mut l = vec![format!("Approving {id} will:"), String::new()];
    l.extend(lines.iter().map(|s| format!("  {s}")));
    l.push(format!("gate: {gate}"));
    l
}

/// The step-up popup's area, its body's wrapped rows, and how many it shows at once.
pub fn step_up_geometry(
    id: &str,
    lines: &[String],
    gate: &str,
    area: Rect,
) -> (Rect, usize, usize) {
    let width = 72.min(area.width);
    let plain: Vec<Line> = step_up_text(id, lines, gate)
        .into_iter()
        .map(Line::raw)
        .collect();
    let rows = Paragraph::new(plain)
        .wrap(Wrap { trim: false })
        .line_count(width.saturating_sub(2));
    // Borders and the key line.
    let r = centered(area, width, (rows as u16).saturating_add(3));
    let shown = usize::from(r.height.saturating_sub(3));
    (r, rows, shown)
}

/// Rows of the step-up payload not yet shown at `scroll` (0: all of it has been seen).
/// The model asks this before it takes a `y`, and to bound scrolling. A terminal of
/// unknown size, or too small to show a row, never counts as seen.
pub fn step_up_unseen(id: &str, lines: &[String], gate: &str, scroll: usize, area: Rect) -> usize {
    let (_, rows, shown) = step_up_geometry(id, lines, gate, area);
    if shown == 0 {
        return rows.max(1);
    }
    rows.saturating_sub(scroll + shown)
}

/// What the bulk summary confirms: the counts, every step-up's whole payload, and what
/// is skipped.
pub fn bulk_body(th: &Theme, actions: &ActionsTab, plan: &BulkPlan) -> Vec<Line<'static>> {
    let mut l = vec![
        Line::styled(plan.summary.clone(), th.style(Role::Accent)),
        Line::raw(""),
    ];
    if plan.step_up > 0 {
        l.push(Line::styled(
            "Typing the count also confirms the step-up of exactly these:",
            th.style(Role::Warn),
        ));
        for id in &plan.step_up_ids {
            l.push(Line::styled(
                format!("  step-up {id}:"),
                th.style(Role::Warn),
            ));
            let what = actions
                .row_by_id(id)
                .map(|r| what_will_happen(&r.action))
                .unwrap_or_default();
            l.extend(what.into_iter().map(|w| Line::raw(format!("    {w}"))));
        }
    }
    for (id, why) in &plan.skipped {
        l.push(Line::styled(
            format!("  skipped {id}: {why}"),
            th.style(Role::Muted),
        ));
    }
    l
}

/// The bulk popup's area, its body's wrapped rows, and how many it shows at once.
pub fn bulk_geometry(
    th: &Theme,
    actions: &ActionsTab,
    plan: &BulkPlan,
    area: Rect,
) -> (Rect, usize, usize) {
    let width = 96.min(area.width);
    let rows = Paragraph::new(bulk_body(th, actions, plan))
        .wrap(Wrap { trim: false })
        .line_count(width.saturating_sub(2));
    // Borders and the two footer rows.
    let r = centered(area, width, (rows as u16).saturating_add(4));
    let shown = usize::from(r.height.saturating_sub(4));
    (r, rows, shown)
}

/// Rows of the bulk summary not yet shown at `scroll` (0: all of it has been seen); as
/// [`step_up_unseen`], a terminal too small to show a row never counts as seen.
pub fn bulk_unseen(
    th: &Theme,
    actions: &ActionsTab,
    plan: &BulkPlan,
    scroll: usize,
    area: Rect,
) -> usize {
    let (_, rows, shown) = bulk_geometry(th, actions, plan, area);
    if shown == 0 {
        return rows.max(1);
    }
    rows.saturating_sub(scroll + shown)
}
