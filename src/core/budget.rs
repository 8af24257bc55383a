//! Blast-radius budgets: how many actions of a kind (or of a kind to one counterparty)
//! may run without a person's review in a sliding window. Past it, the gate asks a
//! person again, however the action would otherwise have been let through (autonomy
//! `auto`, confidence auto-approval, an auto-approve rule).
//!
//! Pure: the runs that spent the budget come in as [`Unreviewed`] facts, which the
//! runtime reads from the audit log (every consent granted without review is an
//! `action.approved` entry whose evidence is `autonomous`). A budget only ever raises a
//! gate: it has no way to express "allow".

use super::domain::{ActionKind, ActionParams, Millis};
use super::domain::{address_key, normalize_pin};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The sliding window a budget counts over (the last hour, day or week before `now`,
/// not the calendar's: no time zone decides when a budget refills).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    Hour,
    Day,
    Week,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Hour, Window::Day, Window::Week];

    pub fn ms(self) -> Millis {
        match self {
            Window::Hour => 3_600_000,
            Window::Day => 24 * 3_600_000,
            Window::Week => 7 * 24 * 3_600_000,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Week => "week",
        }
    }

    pub fn parse(s: &str) -> Option<Window> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_suffix('s').unwrap_or(&s);
        match s {
            "h" | "hr" | "hour" | "hourly" => Some(Window::Hour),
            "d" | "day" | "daily" => Some(Window::Day),
            "w" | "wk" | "week" | "weekly" => Some(Window::Week),
            _ => None,
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// "At most `limit` `kind` without review per `per`", for the kind as a whole or, with
/// `each_counterparty`, to any one counterparty ([`budget_keys`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub kind: ActionKind,
    pub limit: u32,
    pub per: Window,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub each_counterparty: bool,
}

impl Budget {
    /// What identifies a budget in a set: setting another limit for the same key
    /// replaces it.
    pub fn key(&self) -> (ActionKind, Window, bool) {
        (self.kind, self.per, self.each_counterparty)
    }

    /// "send_email: 20 per day", "send_email: 3 per day to one counterparty".
    pub fn describe(&self) -> String {
        format!(
            "{}: {} per {}{}",
            self.kind,
            self.limit,
            self.per,
            if self.each_counterparty {
                " to one counterparty"
            } else {
                ""
            }
        )
    }

    /// The spec as `permissions budget` takes it back ("20/day", "3/day each").
    pub fn spec(&self) -> String {
        format!(
            "{}/{}{}",
            self.limit,
            self.per,
            if self.each_counterparty { " each" } else { "" }
        )
    }
}

/// The most a budget may allow: past this it would not limit anything a person could see.
pub const MAX_LIMIT: u32 = 100_000;

/// Parses a budget spec: "20/day", "20 per day", "5/hour", "3/day each" (each: per
/// counterparty). Returns (limit, window, each_counterparty).
pub fn parse_spec(spec: &str) -> Result<(u32, Window, bool), String> {
    let usage = || {
        format!(
            "{spec:?}: a budget is N/hour, N/day or N/week, with \"each\" for one counterparty (e.g. 20/day, 3/day each)"
        )
    };
    let lower = spec.trim().to_ascii_lowercase();
    let (body, each) = match lower
        .strip_suffix("each")
        .or_else(|| lower.strip_suffix("per counterparty"))
    {
        Some(rest) => (rest.trim(), true),
        None => (lower.as_str(), false),
    };
    let (n, w) = body
        .split_once('/')
        .or_else(|| body.split_once(" per "))
        .ok_or_else(usage)?;
    let limit: u32 = n.trim().parse().map_err(|_| usage())?;
    let per = Window::parse(w).ok_or_else(usage)?;
    Ok((limit, per, each))
}

/// Checks a budget as `Permissions::apply` stores it.
pub fn check(b: &Budget) -> Result<(), String> {
    if b.kind.is_read() {
        return Err(format!(
            "{} is a read: it needs no consent, so there is nothing to budget",
            b.kind
        ));
    }
    if b.limit > MAX_LIMIT {
        return Err(format!("a budget allows at most {MAX_LIMIT} per window"));
    }
    Ok(())
}

/// What a new store starts with: generous enough that a normal day never meets them,
/// low enough that a runaway loop (or a prompt-injected agent on `auto`) stops for a
/// person within the window. The kinds that leave the building and cannot be taken back.
pub fn defaults() -> Vec<Budget> {
    let b = |kind, limit, per| Budget {
        kind,
        limit,
        per,
        each_counterparty: false,
    };
    vec![
        b(ActionKind::SendEmail, 50, Window::Day),
        b(ActionKind::ScheduleMeeting, 20, Window::Day),
        b(ActionKind::PostSlack, 20, Window::Hour),
    ]
}

/// The counterparties a per-counterparty budget counts against, in lower case: each
/// recipient's or attendee's "@domain" (one company, however many addresses), the Slack
/// channel, the deal id (an update or close) or the account (a new deal).
pub fn budget_keys(action: &ActionParams) -> Vec<String> {
    let domains = |addrs: &mut dyn Iterator<Item = &String>| -> Vec<String> {
        addrs
            .map(|a| {
                let a = address_key(a);
                match a.rsplit_once('@') {
                    Some((_, d)) => format!("@{d}"),
                    None => a,
                }
            })
            .collect()
    };
    let mut keys = match action {
        ActionParams::SendEmail(e) | ActionParams::DraftEmail(e) => {
            domains(&mut e.to.iter().chain(&e.cc))
        }
        ActionParams::ScheduleMeeting { attendees, .. } => domains(&mut attendees.iter()),
        ActionParams::PostSlack { channel, .. } => vec![format!(
            "#{}",
            normalize_pin(channel).trim_start_matches('#')
        )],
        ActionParams::CreateDeal { account, .. } => vec![normalize_pin(account)],
        ActionParams::UpdateDeal { deal_id, .. } | ActionParams::CloseDeal { deal_id, .. } => {
            vec![normalize_pin(deal_id)]
        }
        _ => Vec::new(),
    };
    keys.sort();
    keys.dedup();
    keys
}

/// One consent granted without a person's review: what spends a budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreviewed {
    pub kind: ActionKind,
    /// [`budget_keys`] of what ran.
    pub counterparties: Vec<String>,
    pub at: Millis,
}

/// Why `action` (of `kind`, to `keys`) is over `budget` at `now`, given the earlier runs
/// without review; `None` while it still fits. Runs after `now` (a clock skew between
/// processes) count too: a budget errs on the side of asking.
pub fn over_budget(
    budget: &Budget,
    kind: ActionKind,
    keys: &[String],
    now: Millis,
    runs: &[Unreviewed],
) -> Option<String> {
    if budget.kind != kind {
        return None;
    }
    let from = now.saturating_sub(budget.per.ms());
    let in_window = runs.iter().filter(|r| r.kind == kind && r.at > from);
    let over = |spent: Vec<&Unreviewed>, to: &str| -> Option<String> {
        if (spent.len() as u64) < u64::from(budget.limit) {
            return None;
        }
        let since = spent.iter().map(|r| r.at).min().unwrap_or(from);
        Some(format!(
            "budget: {} {kind} per {}{to} reached ({} ran without review since {})",
            budget.limit,
            budget.per,
            spent.len(),
            super::text::utc_minute(since)
        ))
    };
    if !budget.each_counterparty {
        return over(in_window.collect(), "");
    }
    let spent: Vec<&Unreviewed> = in_window.collect();
    keys.iter().find_map(|k| {
        over(
            spent
                .iter()
                .copied()
                .filter(|r| r.counterparties.contains(k))
                .collect(),
            &format!(" to {k}"),
        )
    })
}

/// The longest window among `budgets`: how far back the runtime must read the audit.
pub fn longest_window(budgets: &[Budget]) -> Option<Millis> {
    budgets.iter().map(|b| b.per.ms()).max()
}

/// The union of two budget sets, the lower limit where both set one for the same key:
/// every budget of either applies, so a team's budgets only ever add friction.
pub fn tightest(a: &[Budget], b: &[Budget]) -> Vec<Budget> {
    let mut out: Vec<Budget> = a.to_vec();
    for x in b {
        match out.iter_mut().find(|y| y.key() == x.key()) {
            Some(y) => y.limit = y.limit.min(x.limit),
            None => out.push(x.clone()),
        }
    }
    out.sort_by_key(Budget::key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_in_the_forms_people_type() {
        assert_eq!(parse_spec("20/day"), Ok((20, Window::Day, false)));
        assert_eq!(parse_spec(" 5 per hour "), Ok((5, Window::Hour, false)));
        assert_eq!(parse_spec("3/day each"), Ok((3, Window::Day, true)));
        assert_eq!(
            parse_spec("3 per week per counterparty"),
            Ok((3, Window::Week, true))
        );
        assert!(parse_spec("twenty/day").is_err());
        assert!(parse_spec("20/fortnight").is_err());
        assert!(parse_spec("-1/day").is_err());
    }

    #[test]
    fn a_team_budget_only_adds_friction() {
        let b = |kind, limit, per| Budget {
            kind,
            limit,
            per,
            each_counterparty: false,
        };
        let mine = [b(ActionKind::SendEmail, 10, Window::Day)];
        let team = [
            b(ActionKind::SendEmail, 40, Window::Day),
            b(ActionKind::PostSlack, 5, Window::Hour),
        ];
        let both = tightest(&mine, &team);
        assert_eq!(
            both,
            [
                b(ActionKind::SendEmail, 10, Window::Day),
                b(ActionKind::PostSlack, 5, Window::Hour)
            ]
        );
        // A member who removed every budget still has the team's.
        assert_eq!(tightest(&[], &team).len(), 2);
    }

    #[test]
    fn a_per_counterparty_budget_counts_each_domain_apart() {
        let b = Budget {
            kind: ActionKind::SendEmail,
            limit: 2,
            per: Window::Day,
            each_counterparty: true,
        };
        let run = |d: &str, at| Unreviewed {
            kind: ActionKind::SendEmail,
            counterparties: vec![d.into()],
            at,
        };
        let runs = [
            run("@a.example", 10),
            run("@a.example", 20),
            run("@b.example", 30),
        ];
        let to = |d: &str| vec![d.to_string()];
        assert!(over_budget(&b, ActionKind::SendEmail, &to("@b.example"), 40, &runs).is_none());
        let why = over_budget(&b, ActionKind::SendEmail, &to("@a.example"), 40, &runs).unwrap();
        assert!(why.contains("to @a.example reached (2 ran"), "{why}");
        // A day later the window has moved past them.
        let later = 20 + Window::Day.ms();
        assert!(over_budget(&b, ActionKind::SendEmail, &to("@a.example"), later, &runs).is_none());
    }
}
