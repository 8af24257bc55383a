//! Reading a chat message: an amount, the deal or contact it names (exactly or anywhere
//! in its words), and the day and time it asks for.

use crate::agent::suggest::Snapshot;
use crate::core::domain::{Contact, Deal, Millis};

/// "$900K", "900k", "75,000", "$1.2m" → cents.
pub fn parse_amount_cents(s: &str) -> Option<i64> {
    let t = s
        .trim()
        .trim_start_matches('$')
        .replace(',', "")
        .to_lowercase();
    let (num, mult) = match t.chars().last()? {
        'k' => (t.get(..t.len() - 1)?, 1_000.0),
        'm' => (t.get(..t.len() - 1)?, 1_000_000.0),
        _ => (t.as_str(), 1.0),
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * mult * 100.0).round() as i64)
}

pub(super) fn find_deal<'a>(s: &'a Snapshot, q: &str) -> Option<&'a Deal> {
    let q = q.trim().to_lowercase();
    if q.is_empty() {
        return None;
    }
    s.deals.iter().find(|d| {
        d.id.to_lowercase() == q
            || d.name.to_lowercase().contains(&q)
            || d.account.to_lowercase().contains(&q)
    })
}

pub(super) fn find_contact<'a>(s: &'a Snapshot, q: &str) -> Option<&'a Contact> {
    let q = q.trim().to_lowercase();
    if q.is_empty() {
        return None;
    }
    s.contacts.iter().find(|c| {
        c.name.to_lowercase().contains(&q)
            || c.email.to_lowercase() == q
            || c.account.to_lowercase().contains(&q)
    })
}

pub(super) fn after<'a>(text: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    // ASCII lowercasing keeps byte offsets, so slicing `text` at the prefix is exact.
    let lower = text.to_ascii_lowercase();
    prefixes.iter().find_map(|p| {
        lower.strip_prefix(p).and_then(|_| {
            text.get(p.len()..)
                .map(|r| r.trim().trim_end_matches(['.', '!', '?']))
        })
    })
}

/// The words of a message, lower case, split on anything but letters, digits, `@`, `.`,
/// `-`, `'` and `:` (so an address and a time stay one word each).
fn words(lower: &str) -> Vec<&str> {
    lower
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '@' | '.' | '-' | '\'' | ':')))
        .map(|w| w.trim_end_matches(['.', '\'', ':']))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The contact a message names anywhere: a first or last name, an address or its local
/// part (whole words, so "bill" is Bill but "billing" is not).
pub(super) fn mentioned_contact<'a>(s: &'a Snapshot, lower: &str) -> Option<&'a Contact> {
    let ws = words(lower);
    s.contacts.iter().find(|c| {
        let email = c.email.to_lowercase();
        let local = email.split('@').next().unwrap_or_default().to_string();
        c.name
            .to_lowercase()
            .split_whitespace()
            .map(|n| n.trim_end_matches('.').to_string())
            .filter(|n| n.len() > 1)
            .chain([email, local])
            .any(|n| ws.contains(&n.as_str()))
    })
}

/// The open deal a message names anywhere (an account's or deal's first word, its id),
/// or the open deal of the contact it names.
pub(super) fn mentioned_deal<'a>(s: &'a Snapshot, lower: &str) -> Option<&'a Deal> {
    let ws = words(lower);
    let first = |t: &str| {
        t.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_lowercase()
    };
    s.deals
        .iter()
        .filter(|d| !d.stage.is_closed())
        .find(|d| {
            ws.contains(&first(&d.account).as_str())
                || ws.contains(&first(&d.name).as_str())
                || ws.contains(&d.id.to_lowercase().as_str())
        })
        .or_else(|| {
            let c = mentioned_contact(s, lower)?;
            s.deals
                .iter()
                .find(|d| d.account == c.account && !d.stage.is_closed())
        })
}

/// When a message asks for: a day ("today", "tomorrow", "next tuesday", "on friday",
/// "in 3 days") and a time ("at 3pm", "at 15:30", "9am"), in the person's offset;
/// 10:00 when no time is given, and the next working day when no day is. Returns the
/// start (ms) and how to say it.
pub fn requested_time(lower: &str, now: Millis, utc_offset_s: i32) -> (Millis, String) {
    use chrono::{Datelike, Duration, NaiveTime, TimeZone};
    let zone = chrono::FixedOffset::east_opt(utc_offset_s)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("0 is a valid offset"));
    let today = chrono::DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .with_timezone(&zone)
        .date_naive();
    let ws = words(lower);
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    // "tue", "tues", "thurs" as well as the whole name.
    let weekday = ws.iter().find_map(|w| {
        DAYS.iter()
            .position(|d| *w == *d || (w.len() >= 3 && d.starts_with(*w)))
    });
    let in_days = ws.windows(3).find_map(|w| {
        (w[0] == "in" && w[2].starts_with("day"))
            .then(|| w[1].parse::<i64>().ok())
            .flatten()
    });
    let day = if ws.contains(&"today") {
        today
    } else if ws.contains(&"tomorrow") {
        today + Duration::days(1)
    } else if let Some(n) = in_days {
        today + Duration::days(n.clamp(0, 365))
    } else if let Some(wd) = weekday {
        let ahead = (wd as i64 - today.weekday().num_days_from_monday() as i64).rem_euclid(7);
        today + Duration::days(if ahead == 0 { 7 } else { ahead })
    } else {
        // The next working day.
        let mut d = today + Duration::days(1);
        while d.weekday().num_days_from_monday() >= 5 {
            d += Duration::days(1);
        }
        d
    };
    let time = ws
        .iter()
        .enumerate()
        .find_map(|(i, w)| {
            let (digits, pm) = match (w.strip_suffix("pm"), w.strip_suffix("am")) {
                (Some(d), _) => (d, Some(true)),
                (_, Some(d)) => (d, Some(false)),
                _ => (*w, None),
            };
            let after_at = i > 0 && ws[i - 1] == "at";
            let next_pm = match ws.get(i + 1) {
                Some(&"pm") => Some(true),
                Some(&"am") => Some(false),
                _ => None,
            };
            let pm = pm.or(next_pm);
            if pm.is_none() && !after_at {
                return None;
            }
            let (h, m) = match digits.split_once(':') {
                Some((h, m)) => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
                None => (digits.parse::<u32>().ok()?, 0),
            };
            let h = match pm {
                Some(true) if h < 12 => h + 12,
                Some(false) if h == 12 => 0,
                _ => h,
            };
            NaiveTime::from_hms_opt(h, m, 0)
        })
        .unwrap_or_else(|| NaiveTime::from_hms_opt(10, 0, 0).expect("10:00 is a time"));
    let at = zone
        .from_local_datetime(&day.and_time(time))
        .single()
        .map_or(now, |t| t.timestamp_millis());
    let zone_name = if utc_offset_s == 0 {
        "UTC".to_string()
    } else {
        format!("UTC{zone}")
    };
    (
        at,
        format!(
            "{} {zone_name}",
            day.and_time(time).format("%a %-d %b %H:%M")
        ),
    )
}
