//! One CSV cell into one typed value: amounts, stages, dates, ids. Each parser answers
//! the problem in words a rep can act on ("a negative amount"), never a panic.

use crate::core::domain::{Cents, Millis, Stage};
use sha2::{Digest, Sha256};

/// Dollars as a spreadsheet writes them ("12500", "$12,500.00", "1,234.5") into cents.
/// Negative amounts ("-5", "$-5", "(5)") and anything else are refused.
pub fn amount(s: &str) -> Result<Cents, String> {
    const HINT: &str = "not an amount (e.g. 12500, $12,500.00)";
    let s = s.trim();
    if s.starts_with(['-', '(']) || s.starts_with("$-") {
        return Err("a negative amount".into());
    }
    let s = s.strip_prefix('$').unwrap_or(s).trim_start();
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == '.')
    {
        return Err(HINT.into());
    }
    let digits: String = s.chars().filter(|c| *c != ',').collect();
    let (whole, frac) = match digits.split_once('.') {
        Some((w, f)) => (w, f),
        None => (digits.as_str(), ""),
    };
    if whole.is_empty() || frac.contains('.') || s.starts_with(',') {
        return Err(HINT.into());
    }
    if frac.len() > 2 {
        return Err("more than two decimals (cents are the smallest unit)".into());
    }
    let too_large = || "too large an amount".to_string();
    let dollars: i64 = whole.parse().map_err(|_| too_large())?;
    let cents: i64 = format!("{frac:0<2}")
        .parse()
        .map_err(|_| HINT.to_string())?;
    dollars
        .checked_mul(100)
        .and_then(|c| c.checked_add(cents))
        .ok_or_else(too_large)
}

/// A stage by dealflow's name or a CRM's ("Closed Won", "Negotiation/Review",
/// "Proposal/Price Quote", "Qualification", HubSpot's "qualifiedtobuy"…).
pub fn stage(s: &str) -> Result<Stage, String> {
    let key: String = s
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    let stage = match key.as_str() {
        "prospecting" | "prospect" | "lead" | "new" | "appointmentscheduled" => Stage::Prospecting,
        "qualified" | "qualification" | "qualifiedtobuy" | "needsanalysis" | "discovery" => {
            Stage::Qualified
        }
        "proposal"
        | "proposalpricequote"
        | "valueproposition"
        | "presentationscheduled"
        | "idnetdecisionmakers"
        | "iddecisionmakers"
        | "perceptionanalysis" => Stage::Proposal,
        "negotiation"
        | "negotiationreview"
        | "decisionmakerboughtin"
        | "contractsent"
        | "commit" => Stage::Negotiation,
        "closedwon" | "won" => Stage::ClosedWon,
        "closedlost" | "lost" => Stage::ClosedLost,
        _ => {
            let names: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
            return Err(format!(
                "not a stage ({}, or a CRM's name such as \"Closed Won\")",
                names.join(", ")
            ));
        }
    };
    Ok(stage)
}

/// A date or a time: "2025-03-01" (midnight UTC), "2025-03-01T09:30:00Z" or another RFC
/// 3339 offset ("+02:00", fractions of a second allowed), "2025-03-01 09:30[:00]" (UTC).
/// Milliseconds since the epoch. By hand, not chrono: core reads no clock, and this is
/// all the calendar an import needs.
pub fn date(s: &str) -> Result<Millis, String> {
    const HINT: &str = "not a date (YYYY-MM-DD or RFC 3339, e.g. 2025-03-01T09:30:00Z)";
    let s = s.trim();
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    let (day, rest) = s.split_at(s.len().min(10));
    let mut ymd = day.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (
        ymd.next().filter(|t| t.len() == 4).and_then(num),
        ymd.next().filter(|t| t.len() == 2).and_then(num),
        ymd.next().filter(|t| t.len() == 2).and_then(num),
    ) else {
        return Err(HINT.into());
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return Err(HINT.into());
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    if rest.is_empty() {
        return Ok(ms);
    }
    let rest = rest.strip_prefix(['T', 't', ' ']).ok_or(HINT)?;
    // The zone: Z, ±HH:MM, or none (UTC).
    let (clock, offset_min) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if rest.len() > 6 && matches!(rest.as_bytes()[rest.len() - 6], b'+' | b'-') {
        let (c, z) = rest.split_at(rest.len() - 6);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (h, mi) = z[1..].split_once(':').ok_or(HINT)?;
        let (h, mi) = (num(h).ok_or(HINT)?, num(mi).ok_or(HINT)?);
        if h > 23 || mi > 59 {
            return Err(HINT.into());
        }
        (c, sign * (h * 60 + mi))
    } else {
        (rest, 0)
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.split(':');
    let h = parts
        .next()
        .filter(|t| t.len() == 2)
        .and_then(num)
        .ok_or(HINT)?;
    let mi = parts
        .next()
        .filter(|t| t.len() == 2)
        .and_then(num)
        .ok_or(HINT)?;
    let sec = match parts.next() {
        Some(t) => num(t).filter(|_| t.len() == 2).ok_or(HINT)?,
        None if frac.is_empty() => 0,
        None => return Err(HINT.into()),
    };
    if parts.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return Err(HINT.into());
    }
    let frac_ms = match frac {
        "" => 0,
        f if f.bytes().all(|b| b.is_ascii_digit()) => format!("{:0<3}", &f[..f.len().min(3)])
            .parse()
            .map_err(|_| HINT)?,
        _ => return Err(HINT.into()),
    };
    ms += ((h * 60 + mi - offset_min) * 60 + sec) * 1000 + frac_ms;
    Ok(ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm, the
/// inverse of `text::utc_timestamp`'s).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `a` looks like an address mail can go to (the same test action edits use).
pub fn email(a: &str) -> bool {
    crate::core::domain::email_ok(a)
}

/// `prefix` + 12 hex of SHA-256 over the parts: stable across runs and machines, so
/// importing the same row twice names the same record.
fn derived(prefix: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    format!("{prefix}{}", &hex::encode(h.finalize())[..12])
}

/// Case, spacing and punctuation folded away: "Acme, Inc." and "acme inc" are one.
pub fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A deal's id from the row's external id (a CRM's record id).
pub fn deal_id_external(external: &str) -> String {
    derived("deal-", &["external", external.trim()])
}

/// A deal's id from its name and account, when the file has no external id.
pub fn deal_id_named(name: &str, account: &str) -> String {
    derived("deal-", &["named", &fold(name), &fold(account)])
}

/// A contact's id from the email address (case does not make another person).
pub fn contact_id(email: &str) -> String {
    derived("contact-", &[&email.trim().to_lowercase()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_the_shapes_spreadsheets_write() {
        assert_eq!(amount("12500"), Ok(1_250_000));
        assert_eq!(amount("$12,500.00"), Ok(1_250_000));
        assert_eq!(amount(" $ 1,234.5 "), Ok(123_450));
        assert_eq!(amount("0.07"), Ok(7));
        for neg in ["-5", "$-5", "(5)", "-$5.00"] {
            assert_eq!(amount(neg), Err("a negative amount".into()), "{neg}");
        }
        for bad in [
            "", "$", "abc", "12 500", "1.2.3", ".5", "=SUM(A1)", "1e6", ",5",
        ] {
            assert!(
                amount(bad).unwrap_err().starts_with("not an amount"),
                "{bad}"
            );
        }
        assert!(amount("1.234").unwrap_err().contains("two decimals"));
        assert_eq!(
            amount("99999999999999999999"),
            Err("too large an amount".into())
        );
    }

    #[test]
    fn stages_by_our_names_and_crms() {
        assert_eq!(stage("closed_won"), Ok(Stage::ClosedWon));
        assert_eq!(stage("Closed Won"), Ok(Stage::ClosedWon));
        assert_eq!(stage("Negotiation/Review"), Ok(Stage::Negotiation));
        assert_eq!(stage("Proposal/Price Quote"), Ok(Stage::Proposal));
        assert_eq!(stage("Prospecting"), Ok(Stage::Prospecting));
        assert_eq!(stage("Qualification"), Ok(Stage::Qualified));
        assert_eq!(stage("Closed Lost"), Ok(Stage::ClosedLost));
        assert!(stage("maybe").unwrap_err().contains("closed_won"));
    }

    #[test]
    fn dates_iso_and_rfc3339() {
        assert_eq!(date("1970-01-02"), Ok(86_400_000));
        assert_eq!(date("1970-01-01T00:00:01Z"), Ok(1_000));
        assert_eq!(date("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(date("1970-01-01 00:01:00"), Ok(60_000));
        assert_eq!(date("2024-02-29T12:00:00.5Z"), Ok(1_709_208_000_500));
        assert_eq!(date("2000-03-01"), Ok(951_868_800_000));
        for bad in [
            "03/01/2025",
            "2025-02-30",
            "2023-02-29",
            "2025-3-1",
            "2025-03-01T25:00",
            "2025-03-01x",
            "2025-03-01T10:00:00+5",
        ] {
            assert!(date(bad).is_err(), "{bad}");
        }
        // Agrees with the formatter the rest of dealflow shows times with.
        let t = date("2031-07-15T08:09:10Z").unwrap();
        assert_eq!(crate::core::text::utc_timestamp(t), "2031-07-15 08:09:10");
    }

    #[test]
    fn ids_are_stable_and_fold_case_and_spacing() {
        assert_eq!(
            deal_id_named("Acme renewal", "Acme, Inc."),
            deal_id_named("acme  RENEWAL", "acme inc")
        );
        assert_ne!(
            deal_id_named("Acme renewal", "Acme"),
            deal_id_named("Acme", "renewal Acme")
        );
        assert_eq!(deal_id_external("006A1"), deal_id_external(" 006A1 "));
        assert_eq!(
            contact_id("Bill@Initech.example"),
            contact_id("bill@initech.example")
        );
        let id = deal_id_external("006A1");
        assert!(id.starts_with("deal-") && id.len() == 17, "{id}");
    }
}
