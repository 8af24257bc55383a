//! The Actions tab: the virtualised queue and the detail pane (justification, gate and
//! reason chain, exact payload, edit diff).

use super::{fit, fmt_ts};
use crate::core::consent::{Evidence, Gate};
use crate::core::domain::{ActionState, RiskLevel};
use crate::tui::actions::{Row, confidence_bar, is_pending};
use crate::tui::app::App;
use crate::tui::editor::{DiffLine, diff_lines, draft_text};
use crate::tui::keymap::{Command, Section};
use crate::tui::layout::window_start;
use crate::tui::theme::{Role, Theme};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let [queue, detail] = crate::tui::layout::actions_split(area);
    render_queue(app, f, queue);
    render_detail(app, f, detail);
}

fn risk_role(level: RiskLevel) -> Role {
    match level {
        RiskLevel::None => Role::RiskNone,
        RiskLevel::Low => Role::RiskLow,
        RiskLevel::Medium => Role::RiskMedium,
        RiskLevel::High => Role::RiskHigh,
    }
}

fn state_role(s: ActionState) -> Role {
    match s {
        ActionState::Proposed | ActionState::AwaitingConsent => Role::Accent,
        ActionState::Approved | ActionState::Executing => Role::Warn,
        ActionState::Succeeded => Role::Ok,
        ActionState::Failed | ActionState::NeedsReconciliation => Role::Error,
        ActionState::Rejected | ActionState::Expired => Role::Muted,
    }
}

fn gate_label(g: &Gate) -> &'static str {
    match g {
        Gate::Allow => "auto",
        Gate::Review => "review",
        Gate::StepUp { .. } => "step-up",
        Gate::Ciba { .. } => "phone",
        Gate::Deny { .. } => "denied",
    }
}

fn risk_label(r: &Row) -> String {
    let risk = r.action.kind().risk();
    let lvl = match risk.level {
        RiskLevel::None => "read",
        RiskLevel::Low => "low",
        RiskLevel::Medium => "med",
        RiskLevel::High => "high",
    };
    format!("{lvl} {}", if risk.reversible { "rev" } else { "irrev" })
}

fn render_queue(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.actions;
    let th = &app.theme;
    // The finished actions are held a window at a time: when the store has more, the
    // title says how many of how many (a normal queue holds them all and says nothing).
    let not_held = t.finished_not_held();
    let title = format!(
        " Queue · view {} · {}{} shown · {} marked{}{} ",
        t.view.name(),
        t.visible.len(),
        // The first frame's page: say more is coming, not that this is all of it.
        if t.partial { "+ (loading…)" } else { "" },
        t.marks.len(),
        if t.filter.is_empty() {
            String::new()
        } else {
            format!(" · filter \"{}\"", t.filter)
        },
        if not_held > 0 {
            format!(
                " · {} of {} finished loaded",
                t.finished_held(),
                t.finished_total.unwrap_or(0)
            )
        } else {
            String::new()
        }
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(th.style(Role::Border))
        .title(Span::styled(title, th.style(Role::Title)));
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height < 2 {
        return;
    }
    let w = inner.width as usize;
    // mark 2 | kind 17 | target 24 | title * | conf 11 | risk 11 | gate 8 | state 13.
    // A narrow terminal (80 columns over SSH) drops the least important first: the risk
    // column (the detail pane says it), the confidence bar (the figure stays), some of
    // the target, and the kind's long name for a short one (the detail pane has it), so
    // the title, what a rep reads first, keeps room; the state — "sending 10s",
    // "awaiting_consent" — always stays.
    let narrow = w < 100;
    let (kind_w, target_w, conf_w, risk_w) = if narrow {
        (11, 20, 5, 0)
    } else {
        (17, 24, 11, 11)
    };
    let fixed = 2 + kind_w + target_w + conf_w + risk_w + 8 + 13;
    let title_w = w.saturating_sub(fixed).max(6);
    let header = format!(
        "  {}{}{}{}{}{}{}",
        fit("kind", kind_w),
        fit("target", target_w),
        fit("title", title_w),
        fit(if narrow { "conf" } else { "confidence" }, conf_w),
        fit("risk", risk_w),
        fit("gate", 8),
        fit("state", 13)
    );
    f.render_widget(
        Paragraph::new(Line::styled(header, th.style(Role::Muted))),
        Rect { height: 1, ..inner },
    );
    let mut rows_area = Rect {
        y: inner.y + 1,
        height: inner.height - 1,
        ..inner
    };
    // The last line says what is not loaded yet, in the view that would show it.
    if t.loaded && not_held > 0 && t.shows_finished() && rows_area.height >= 2 {
        rows_area.height -= 1;
        let text = if t.loading_older.is_some() {
            "… loading older finished actions".to_string()
        } else {
            format!(
                "… {not_held} older finished not loaded: the end of the list loads {} more",
                crate::tui::actions::FINISHED_PAGE.min(not_held)
            )
        };
        f.render_widget(
            Paragraph::new(Line::styled(text, th.style(Role::Muted))),
            Rect {
                y: rows_area.y + rows_area.height,
                height: 1,
                ..rows_area
            },
        );
    }
    if !t.loaded {
        f.render_widget(Paragraph::new("loading…"), rows_area);
        return;
    }
    if t.visible.is_empty() {
        f.render_widget(
            Paragraph::new(Line::styled(
                "Nothing here. s switches saved views; / filters.",
                th.style(Role::Muted),
            )),
            rows_area,
        );
        return;
    }
    let h = rows_area.height as usize;
    let start = window_start(t.cursor, h);
    let range = t.range_anchor.map(|a| (a.min(t.cursor), a.max(t.cursor)));
    // Only the rows in the window are built: the cost of a frame is O(height).
    let lines: Vec<Line> = t.visible[start..(start + h).min(t.visible.len())]
        .iter()
        .enumerate()
        .map(|(off, &i)| {
            let pos = start + off;
            let r = &t.rows[i];
            let a = &r.action;
            let marked = t.marks.contains(&a.id);
            let in_range = range.is_some_and(|(lo, hi)| pos >= lo && pos <= hi);
            let mark = if marked {
                "● "
            } else if in_range {
                "┆ "
            } else {
                "  "
            };
            let confidence = if narrow {
                format!("{:.2}", a.confidence)
            } else {
                format!("{} {:.2}", confidence_bar(a.confidence), a.confidence)
            };
            let mut spans = vec![
                Span::styled(mark, th.style(Role::Marked)),
                Span::raw(fit(
                    if narrow {
                        queue_kind(a.kind())
                    } else {
                        a.kind().as_str()
                    },
                    kind_w,
                )),
                // A cell that fills its column still leaves one space before the next.
                Span::raw(format!("{} ", fit(&a.params.target(), target_w - 1))),
                Span::raw(format!(
                    "{} ",
                    fit(queue_title(&a.title, title_w), title_w.saturating_sub(1))
                )),
                Span::styled(fit(&confidence, conf_w), th.style(Role::Confidence)),
                Span::styled(
                    fit(&risk_label(r), risk_w),
                    th.style(risk_role(a.kind().risk().level)),
                ),
                Span::raw(fit(gate_label(r.decision.gate()), 8)),
                match app.outbox.secs_left(&a.id, app.now) {
                    Some(secs) => {
                        Span::styled(fit(&format!("sending {secs}s"), 13), th.style(Role::Warn))
                    }
                    None if a.state == ActionState::Approved && app.blocked.contains_key(&a.id) => {
                        Span::styled(fit("blocked", 13), th.style(Role::Error))
                    }
                    None => Span::styled(fit(a.state.as_str(), 13), th.style(state_role(a.state))),
                },
            ];
            if marked {
                for s in spans.iter_mut().skip(1) {
                    s.style = s.style.patch(th.style(Role::Marked));
                }
            }
            let mut line = Line::from(std::mem::take(&mut spans));
            if pos == t.cursor {
                line = line.style(th.style(Role::Selected));
            }
            line
        })
        .collect();
    f.render_widget(Paragraph::new(lines), rows_area);
}

fn section<'a>(th: &Theme, s: &'a str) -> Line<'a> {
    Line::styled(s, th.style(Role::Title))
}

fn render_detail(app: &App, f: &mut Frame, area: Rect) {
    let th = &app.theme;
    let Some(r) = app.actions.current() else {
        app.actions.detail.set_room(0);
        f.render_widget(
            Block::default()
                .borders(Borders::ALL)
                .border_style(th.style(Role::Border))
                .title(Span::styled(" Detail ", th.style(Role::Title))),
            area,
        );
        return;
    };
    let inner = Block::default().borders(Borders::ALL).inner(area);
    let a = &r.action;
    let d = &r.decision;
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(inner);
    let mut l: Vec<Line> = vec![
        Line::from(vec![
            Span::styled(a.title.clone(), th.style(Role::Accent)),
            Span::styled(format!("  {}", a.id), th.style(Role::Muted)),
        ]),
        Line::styled(
            format!(
                "{} · {} · v{} · from {} · {}",
                a.kind(),
                a.state,
                a.version,
                a.surface,
                fmt_ts(a.created_at)
            ),
            th.style(Role::Muted),
        ),
        Line::from(vec![
            Span::raw("risk: "),
            Span::styled(
                a.kind().risk().to_string(),
                th.style(risk_role(a.kind().risk().level)),
            ),
            Span::raw(format!(
                "   confidence {:.2} (band {})",
                a.confidence,
                d.band()
            )),
        ]),
    ];
    // The payload keeps epoch milliseconds (it is what consent covers, exactly); a
    // person reads the meeting's time here.
    if let crate::core::domain::ActionParams::ScheduleMeeting { start, end, .. } = &a.params {
        l.push(Line::raw(format!(
            "when: {} – {} min",
            super::fmt_when(*start, app.now, app.utc_offset_s),
            end.saturating_sub(*start) / 60_000
        )));
    }
    // A confidence figure means little without what the person did with similar ones.
    if let Some(record) = app.trust.track_record(a.kind(), a.confidence) {
        l.push(Line::styled(
            format!("track record: {record}"),
            th.style(Role::Confidence),
        ));
    }
    l.extend([
        Line::raw(""),
        section(th, "Why"),
        Line::raw(a.justification.clone()),
        Line::raw(""),
        section(th, "Gate"),
    ]);
    let gate_role = match d.gate() {
        Gate::Allow | Gate::Review => Role::Ok,
        Gate::StepUp { .. } | Gate::Ciba { .. } => Role::Warn,
        Gate::Deny { .. } => Role::Error,
    };
    l.push(Line::styled(d.gate().to_string(), th.style(gate_role)));
    for (i, reason) in d.reasons().iter().enumerate() {
        l.push(Line::styled(
            format!("  {}. {reason}", i + 1),
            th.style(Role::Muted),
        ));
    }
    if let Some(ev) = &a.evidence {
        l.push(Line::raw(""));
        l.push(section(th, "Consent"));
        let text = match &ev.evidence {
            Evidence::Autonomous => "autonomous: allowed by your permissions".to_string(),
            Evidence::Reviewed { actor, at } => format!("reviewed by {actor} at {}", fmt_ts(*at)),
            Evidence::SteppedUp { actor, at } => {
                format!("step-up confirmed by {actor} at {}", fmt_ts(*at))
            }
            Evidence::Ciba {
                approver,
                approved_at,
                binding_message,
                ..
            } => format!(
                "approved on {} device at {}: \"{binding_message}\"",
                approver.whose(),
                fmt_ts(*approved_at)
            ),
        };
        // Shown as recorded; execution runs on it only if its seal verifies.
        let text = if ev.seal.is_some() {
            text
        } else {
            format!("{text} (unsealed: will not run)")
        };
        l.push(Line::styled(text, th.style(Role::Ok)));
    }
    if let Some(why) = app.blocked.get(&a.id) {
        l.push(Line::raw(""));
        l.push(section(th, "Blocked before it ran"));
        l.push(Line::styled(why.clone(), th.style(Role::Error)));
        l.push(Line::styled(
            "still approved: fix the account (Permissions tab, c), then X runs it · r cancels",
            th.style(Role::Muted),
        ));
    }
    if let Some(o) = &a.outcome {
        l.push(Line::raw(""));
        l.push(section(th, "Outcome"));
        l.push(Line::raw(o.clone()));
    }
    if let Some(secs) = app.outbox.secs_left(&a.id, app.now) {
        let key = |c| app.keymap.keys_for(Section::Actions, c);
        l.push(Line::raw(""));
        l.push(Line::styled(
            format!(
                "In the outbox: sends in {secs}s · {} takes it back · {} sends now",
                key(Command::UndoSend),
                key(Command::ExecuteApproved)
            ),
            th.style(Role::Warn),
        ));
    } else if a.state == ActionState::Approved {
        l.push(Line::raw(""));
        l.push(Line::styled(
            "r rejects (cancels the approval before it runs) · X executes",
            th.style(Role::Muted),
        ));
    }
    if is_pending(a.state) {
        l.push(Line::raw(""));
        l.push(Line::styled(
            "a approve · r reject · e edit · space mark · b batch",
            th.style(Role::Muted),
        ));
    }
    let why = Paragraph::new(l).wrap(Wrap { trim: false });

    let mut p: Vec<Line> = Vec::new();
    if a.is_edited() {
        p.push(section(th, "Edited: diff against the AI's original"));
        p.extend(diff_view(
            th,
            &diff_lines(
                &draft_text(&a.original, app.utc_offset_s),
                &draft_text(&a.params, app.utc_offset_s),
            ),
        ));
        p.push(Line::raw(""));
    }
    p.push(section(th, "Payload (exact)"));
    let json = serde_json::to_string_pretty(&a.params).unwrap_or_default();
    p.extend(json.lines().map(|s| Line::raw(s.to_string())));
    let payload = Paragraph::new(p).wrap(Wrap { trim: false }).block(
        Block::default()
            .borders(Borders::LEFT)
            .border_style(th.style(Role::Border)),
    );
    // Both panes scroll together (J/K), each only as far as it has lines to show, so a
    // rep at 80×24 can read the justification, the gate's reasons and the whole payload.
    let over = |para: &Paragraph, width: u16| {
        u16::try_from(para.line_count(width))
            .unwrap_or(u16::MAX)
            .saturating_sub(inner.height)
    };
    let (room_l, room_r) = (over(&why, left.width), over(&payload, right.width));
    let room = room_l.max(room_r);
    let scroll = &app.actions.detail;
    scroll.set_room(room);
    let off = scroll.offset(&a.id).min(room);
    let key = |c| app.keymap.keys_for(Section::Actions, c);
    let title = match scroll.hint(
        &a.id,
        room,
        (&key(Command::DetailDown), &key(Command::DetailUp)),
    ) {
        Some(h) => format!(" Detail · {h} "),
        None => " Detail ".to_string(),
    };
    f.render_widget(
        Block::default()
            .borders(Borders::ALL)
            .border_style(th.style(Role::Border))
            .title(Span::styled(title, th.style(Role::Title))),
        area,
    );
    f.render_widget(why.scroll((off.min(room_l), 0)), left);
    f.render_widget(payload.scroll((off.min(room_r), 0)), right);
}

/// The title as the queue's title column shows it: in a narrow column the offline
/// planner's "[offline] " tag would leave room for one letter of what the action is, so
/// it gives way there (the detail pane, the justification and the status line still say
/// offline planner).
/// The kind in the queue's narrow column: short, and still telling a send from a draft.
fn queue_kind(kind: crate::core::domain::ActionKind) -> &'static str {
    use crate::core::domain::ActionKind as K;
    match kind {
        K::SendEmail => "email",
        K::DraftEmail => "draft",
        K::ScheduleMeeting => "meeting",
        K::PostSlack => "slack",
        K::CreateDeal => "new deal",
        K::UpdateDeal => "deal edit",
        K::CloseDeal => "close deal",
        read => read.as_str(),
    }
}

fn queue_title(title: &str, width: usize) -> &str {
    match title.strip_prefix("[offline] ") {
        Some(rest) if width < 30 => rest,
        _ => title,
    }
}

/// Diff lines with +/- markers and the diff roles. A removed line followed by the
/// added line that replaced it marks the changed words (reversed), so a one-word edit
/// in a long paragraph is seen at once.
pub fn diff_view(th: &Theme, d: &[DiffLine]) -> Vec<Line<'static>> {
    use crate::tui::editor::word_diff;
    let shown: Vec<&DiffLine> = d
        .iter()
        .filter(|l| !matches!(l, DiffLine::Same(_)) || d.len() < 12)
        .collect();
    let marked = |prefix: &str, spans: Vec<(String, bool)>, role: Role| {
        let base = th.style(role);
        let mut out = vec![Span::styled(prefix.to_string(), base)];
        out.extend(spans.into_iter().map(|(t, changed)| {
            if changed {
                Span::styled(t, base.add_modifier(Modifier::REVERSED))
            } else {
                Span::styled(t, base)
            }
        }));
        Line::from(out)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < shown.len() {
        // A run of removals followed by a run of additions: pair them line by line.
        let dels: Vec<&String> = shown[i..]
            .iter()
            .map_while(|l| match l {
                DiffLine::Removed(s) => Some(s),
                _ => None,
            })
            .collect();
        let adds: Vec<&String> = shown[i + dels.len()..]
            .iter()
            .map_while(|l| match l {
                DiffLine::Added(s) => Some(s),
                _ => None,
            })
            .collect();
        if !dels.is_empty() && dels.len() == adds.len() {
            let pairs: Vec<_> = dels
                .iter()
                .zip(&adds)
                .map(|(o, n)| word_diff(o, n))
                .collect();
            for (o, _) in &pairs {
                out.push(marked("- ", o.clone(), Role::DiffDel));
            }
            for (_, n) in pairs {
                out.push(marked("+ ", n, Role::DiffAdd));
            }
            i += dels.len() * 2;
            continue;
        }
        out.push(match shown[i] {
            DiffLine::Same(s) => Line::styled(format!("  {s}"), Style::default()),
            DiffLine::Added(s) => Line::styled(format!("+ {s}"), th.style(Role::DiffAdd)),
            DiffLine::Removed(s) => Line::styled(format!("- {s}"), th.style(Role::DiffDel)),
        });
        i += 1;
    }
    out
}
