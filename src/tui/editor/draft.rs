//! A payload as the text a person edits (mail-like headers, then the body) and that
//! text parsed back into typed params; times in the person's UTC offset.

use crate::core::domain::{ActionParams, Email, Millis, Stage, format_money};

/// `2026-12-02 16:00 UTC+01:00`: a time as the person reads it, in their offset.
pub fn local_time(ms: Millis, utc_offset_s: i32) -> String {
    let Some(zone) = chrono::FixedOffset::east_opt(utc_offset_s) else {
        return ms.to_string();
    };
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => {
            let z = if utc_offset_s == 0 {
                "UTC".to_string()
            } else {
                format!("UTC{}", t.with_timezone(&zone).format("%:z"))
            };
            format!("{} {z}", t.with_timezone(&zone).format("%Y-%m-%d %H:%M"))
        }
        None => ms.to_string(),
    }
}

/// Reads `2026-12-02 16:00` (in the person's offset), optionally followed by a zone as
/// [`local_time`] writes it (`UTC`, `UTC+01:00`, `+01:00`, `Z`).
pub fn parse_local_time(s: &str, utc_offset_s: i32) -> Result<Millis, String> {
    let bad = || format!("{s:?}: give a date and time like 2026-12-02 16:00");
    let mut parts = s.split_whitespace();
    let (Some(day), Some(hm)) = (parts.next(), parts.next()) else {
        return Err(bad());
    };
    let naive = chrono::NaiveDateTime::parse_from_str(&format!("{day} {hm}"), "%Y-%m-%d %H:%M")
        .map_err(|_| bad())?;
    let offset = match parts.next() {
        None => utc_offset_s,
        Some(z) => {
            let z = z.trim_start_matches("UTC");
            if z.is_empty() || z == "Z" {
                0
            } else {
                let sign = match z.chars().next() {
                    Some('+') => 1,
                    Some('-') => -1,
                    _ => return Err(format!("{s:?}: the zone must look like UTC+01:00")),
                };
                let (h, m) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
                let (h, m): (i32, i32) =
                    (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
                sign * (h * 3600 + m * 60)
            }
        }
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    let zone = chrono::FixedOffset::east_opt(offset).ok_or_else(bad)?;
    naive
        .and_local_timezone(zone)
        .single()
        .map(|t| t.timestamp_millis())
        .ok_or_else(bad)
}

/// The text a person edits for `params`; times in their UTC offset.
pub fn draft_text(params: &ActionParams, utc_offset_s: i32) -> String {
    match params {
        ActionParams::SendEmail(e) | ActionParams::DraftEmail(e) => format!(
            "To: {}\nCc: {}\nSubject: {}\n\n{}",
            e.to.join(", "),
            e.cc.join(", "),
            e.subject,
            e.body
        ),
        ActionParams::PostSlack { channel, text } => format!("Channel: {channel}\n\n{text}"),
        ActionParams::ScheduleMeeting {
            title,
            attendees,
            start,
            end,
            description,
        } => format!(
            "Title: {title}\nAttendees: {}\nWhen: {}\nMinutes: {}\n\n{description}",
            attendees.join(", "),
            local_time(*start, utc_offset_s),
            end.saturating_sub(*start) / 60_000
        ),
        ActionParams::CreateDeal {
            name,
            account,
            amount_cents,
            stage,
        } => format!(
            "Name: {name}\nAccount: {account}\nAmount: {}\nStage: {}",
            format_money(*amount_cents),
            stage.as_str()
        ),
        ActionParams::UpdateDeal {
            deal_id,
            stage,
            amount_cents,
            notes,
            ..
        } => format!(
            "Deal: {deal_id}\nStage: {}\nAmount: {}\n\n{}",
            stage.map_or("", |s| s.as_str()),
            amount_cents.map(format_money).unwrap_or_default(),
            notes.as_deref().unwrap_or_default()
        ),
        ActionParams::CloseDeal { deal_id, won, .. } => format!(
            "Deal: {deal_id}\nOutcome: {}",
            if *won { "won" } else { "lost" }
        ),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// Headers up to the first blank line, then the body.
fn headers(text: &str) -> (Vec<(String, String)>, String) {
    let mut hs = Vec::new();
    let mut lines = text.split('\n');
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            hs.push((k.trim().to_lowercase(), v.trim().to_string()));
        } else {
            hs.push((line.trim().to_lowercase(), String::new()));
        }
    }
    let body: Vec<&str> = lines.collect();
    (hs, body.join("\n"))
}

fn amount(v: &str) -> Result<i64, String> {
    crate::agent::offline::parse_amount_cents(v)
        .ok_or_else(|| format!("Amount {v:?}: give dollars, like $75,000 or 75k"))
}

fn stage(v: &str) -> Result<Stage, String> {
    Stage::parse(&v.trim().to_lowercase().replace([' ', '-'], "_")).ok_or_else(|| {
        format!(
            "Stage {v:?}: one of {}",
            Stage::ALL.map(Stage::as_str).join(", ")
        )
    })
}

fn unknown(k: &str, known: &str) -> String {
    format!("unknown field {k:?} ({known})")
}

/// Parses edited text back into params of the same kind as `like`; times are read in
/// the person's UTC offset unless a zone is written.
pub fn parse_draft(
    like: &ActionParams,
    text: &str,
    utc_offset_s: i32,
) -> Result<ActionParams, String> {
    match like {
        ActionParams::SendEmail(orig) | ActionParams::DraftEmail(orig) => {
            let (hs, body) = headers(text);
            let mut e = Email {
                to: vec![],
                cc: vec![],
                subject: String::new(),
                body,
                deal_id: orig.deal_id.clone(),
            };
            for (k, v) in hs {
                match k.as_str() {
                    "to" => e.to = split_list(&v),
                    "cc" => e.cc = split_list(&v),
                    "subject" => e.subject = v,
                    other => return Err(unknown(other, "To, Cc, Subject")),
                }
            }
            Ok(if matches!(like, ActionParams::SendEmail(_)) {
                ActionParams::SendEmail(e)
            } else {
                ActionParams::DraftEmail(e)
            })
        }
        ActionParams::PostSlack { .. } => {
            let (hs, body) = headers(text);
            let mut channel = String::new();
            for (k, v) in hs {
                match k.as_str() {
                    "channel" => channel = v,
                    other => return Err(unknown(other, "Channel")),
                }
            }
            Ok(ActionParams::PostSlack {
                channel,
                text: body,
            })
        }
        ActionParams::ScheduleMeeting { start, end, .. } => {
            let (hs, description) = headers(text);
            let (mut title, mut attendees) = (String::new(), Vec::new());
            // A field left as shown keeps its exact value (the form shows minutes, the
            // payload holds milliseconds): only what the person changed changes.
            let mut at = *start;
            let mut length = end.saturating_sub(*start);
            for (k, v) in hs {
                match k.as_str() {
                    "title" => title = v,
                    "attendees" => attendees = split_list(&v),
                    "when" if v == local_time(*start, utc_offset_s) => {}
                    "when" => at = parse_local_time(&v, utc_offset_s)?,
                    "minutes" if v == (length / 60_000).to_string() => {}
                    "minutes" => {
                        length = v
                            .parse::<i64>()
                            .ok()
                            .filter(|m| (1..=24 * 60).contains(m))
                            .ok_or_else(|| format!("Minutes {v:?}: a length from 1 to 1440"))?
                            * 60_000
                    }
                    other => return Err(unknown(other, "Title, Attendees, When, Minutes")),
                }
            }
            Ok(ActionParams::ScheduleMeeting {
                title,
                attendees,
                start: at,
                end: at + length,
                description,
            })
        }
        ActionParams::CreateDeal { .. } => {
            let (hs, _) = headers(text);
            let (mut name, mut account, mut cents, mut st) =
                (String::new(), String::new(), 0, Stage::Prospecting);
            for (k, v) in hs {
                match k.as_str() {
                    "name" => name = v,
                    "account" => account = v,
                    "amount" => cents = amount(&v)?,
                    "stage" => st = stage(&v)?,
                    other => return Err(unknown(other, "Name, Account, Amount, Stage")),
                }
            }
            Ok(ActionParams::CreateDeal {
                name,
                account,
                amount_cents: cents,
                stage: st,
            })
        }
        ActionParams::UpdateDeal { deal_id, .. } => {
            let (hs, notes) = headers(text);
            let (mut st, mut cents) = (None, None);
            for (k, v) in hs {
                match k.as_str() {
                    // The deal an update is about is what was reviewed: not editable.
                    "deal" if v == *deal_id => {}
                    "deal" => return Err(format!("Deal stays {deal_id}")),
                    "stage" if v.is_empty() => {}
                    "stage" => st = Some(stage(&v)?),
                    "amount" if v.is_empty() => {}
                    "amount" => cents = Some(amount(&v)?),
                    other => return Err(unknown(other, "Deal, Stage, Amount")),
                }
            }
            Ok(ActionParams::UpdateDeal {
                deal_id: deal_id.clone(),
                stage: st,
                amount_cents: cents,
                notes: Some(notes).filter(|n| !n.trim().is_empty()),
                // The CRM revision is the store's, filled again by the pipeline.
                revision: None,
            })
        }
        ActionParams::CloseDeal {
            deal_id,
            amount_cents,
            revision,
            ..
        } => {
            let (hs, _) = headers(text);
            let mut won = None;
            for (k, v) in hs {
                match k.as_str() {
                    "deal" if v == *deal_id => {}
                    "deal" => return Err(format!("Deal stays {deal_id}")),
                    "outcome" => {
                        won = Some(match v.to_lowercase().as_str() {
                            "won" => true,
                            "lost" => false,
                            _ => return Err(format!("Outcome {v:?}: won or lost")),
                        })
                    }
                    other => return Err(unknown(other, "Deal, Outcome")),
                }
            }
            Ok(ActionParams::CloseDeal {
                deal_id: deal_id.clone(),
                won: won.ok_or("Outcome: won or lost")?,
                // The amount at stake and the revision are the CRM's, filled again by
                // the pipeline.
                amount_cents: *amount_cents,
                revision: revision.clone(),
            })
        }
        _ => {
            let p: ActionParams =
                serde_json::from_str(text).map_err(|e| format!("payload JSON: {e}"))?;
            if p.kind() != like.kind() {
                return Err(format!("kind must stay {}", like.kind()));
            }
            Ok(p)
        }
    }
}
