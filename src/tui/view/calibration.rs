//! The calibration popup: "trust grows over time" made visible. For one action kind at a
//! time, a reliability chart — the share of suggestions you approved unedited in each
//! confidence band against the ideal (a 0.9 that means 90%) — with the counts behind
//! each point, and the auto-approve rules in force for that kind with their hits.

use super::popup::frame;
use crate::tui::app::App;
use crate::tui::layout::centered;
use crate::tui::theme::Role;
use crate::tui::trust::calibration_kinds;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Chart, Clear, Dataset, GraphType, Paragraph};

/// The bands as calibration names them, with the confidence each stands for on the x
/// axis (its middle).
const BANDS: [(&str, f64); 4] = [
    ("< 0.60", 0.5),
    ("0.60–0.75", 0.675),
    ("0.75–0.90", 0.825),
    ("≥ 0.90", 0.95),
];

pub(super) fn render(app: &App, f: &mut Frame, area: Rect, kind_ix: usize) {
    let th = &app.theme;
    let kinds = calibration_kinds();
    let kind = kinds[kind_ix % kinds.len()];
    let r = centered(area, 78, area.height.saturating_sub(2).min(22));
    let title = format!(" Calibration · {kind} ({}/{}) ", kind_ix + 1, kinds.len());
    let block = frame(app, &title, Role::Border);
    let inner = block.inner(r);
    f.render_widget(Clear, r);
    f.render_widget(block, r);

    let Some(latest) = &app.trust.latest else {
        f.render_widget(
            Paragraph::new(Line::styled(
                "replaying the audit log…",
                th.style(Role::Muted),
            )),
            inner,
        );
        return;
    };
    let figures = &latest.calibration.figures;
    let mut points = Vec::new();
    let mut counts = Vec::new();
    for (band, x) in BANDS {
        match figures.get(&(kind, band)) {
            Some(fig) if fig.total > 0 => {
                let share = fig.approved_unedited as f64 / fig.total as f64;
                points.push((x, share));
                counts.push(format!(
                    "{band}: {}/{} unedited ({:.0}%)",
                    fig.approved_unedited,
                    fig.total,
                    share * 100.0
                ));
            }
            _ => counts.push(format!("{band}: no decisions yet")),
        }
    }
    let ideal = [(0.5, 0.5), (1.0, 1.0)];
    let rules: Vec<String> = app
        .perms
        .perms
        .as_ref()
        .map(|p| {
            p.auto_rules
                .iter()
                .filter(|r| r.kind == kind && r.active_at(app.now))
                .map(|r| {
                    format!(
                        "rule: to {} at ≥ {:.2} · {} hit(s)",
                        r.target,
                        r.min_confidence,
                        app.trust.hits(&r.id)
                    )
                })
                .collect()
        })
        .unwrap_or_default();

    let text_rows = (counts.len() + rules.len().max(1) + 1) as u16;
    let [chart_area, text_area] = Layout::vertical([
        Constraint::Min(6),
        Constraint::Length(text_rows.min(inner.height / 2)),
    ])
    .areas(inner);

    let datasets = vec![
        Dataset::default()
            .name("ideal")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(th.style(Role::Muted))
            .data(&ideal),
        Dataset::default()
            .name("you")
            .marker(Marker::Dot)
            .graph_type(GraphType::Scatter)
            .style(th.style(Role::Accent))
            .data(&points),
    ];
    let chart = Chart::new(datasets)
        .x_axis(
            Axis::default()
                .title("agent's confidence")
                .bounds([0.5, 1.0])
                .labels(["0.5", "0.75", "1.0"])
                .style(th.style(Role::Muted)),
        )
        .y_axis(
            Axis::default()
                .title("approved unedited")
                .bounds([0.0, 1.0])
                .labels(["0%", "50%", "100%"])
                .style(th.style(Role::Muted)),
        );
    f.render_widget(chart, chart_area);

    let mut lines: Vec<Line> = counts.into_iter().map(Line::raw).collect();
    if rules.is_empty() {
        lines.push(Line::styled(
            "no auto-approve rule for this kind (n: nudges and rules)",
            th.style(Role::Muted),
        ));
    } else {
        lines.extend(rules.into_iter().map(Line::raw));
    }
    lines.push(Line::styled(
        "j/k next/previous kind · esc close",
        th.style(Role::Muted),
    ));
    f.render_widget(Paragraph::new(lines), text_area);
}
