//! The sandbox world's script: what happens as time goes by (`dealflow sandbox advance`).
//! Deals age, prospects write back, new teams show up in the CRM, a deal moves to
//! proposal and wants a meeting. Each event fires once, on the day of world time it is
//! scripted for, so a demo (and a test) can walk the same story every time: the agent
//! notices and proposes, the rep approves, trust builds up.
//!
//! World time is kept in the audit log (`sandbox.advanced` entries about
//! [`WORLD_SUBJECT`]), so it is the same for every process on the sandbox store and
//! survives restarts.

use crate::core::audit::NewAuditEntry;
use crate::core::domain::{Contact, Deal, Millis, Stage, Surface};
use crate::store::{Store, StoreError};

const DAY: Millis = 86_400_000;

/// The audit subject world time is recorded under.
pub const WORLD_SUBJECT: &str = "sandbox-world";

/// One scripted event.
pub struct Event {
    /// World day it happens on (1: the first day after the sandbox started).
    pub day: i64,
    /// What happened, as the rep would hear it.
    pub what: &'static str,
    /// A message that arrives in the inbox that day (from, subject).
    pub mail: Option<(&'static str, &'static str)>,
    apply: fn(&dyn Store, Millis) -> Result<(), StoreError>,
}

/// What one advance did.
#[derive(Debug, Default)]
pub struct Advanced {
    /// Open deals that aged.
    pub aged: usize,
    /// The scripted events that happened, in order.
    pub happened: Vec<&'static str>,
    /// Mail to deliver to the emulated inbox (from, subject), in order.
    pub mail: Vec<(&'static str, &'static str)>,
}

/// Initech's regional teams that trialled in October and were never followed up: six
/// stale deals at one domain, so approving the agent's follow-ups builds a streak.
const INITECH_TEAMS: [(&str, &str, &str); 6] = [
    ("dallas", "Dana Sinclair", "dana"),
    ("denver", "Milton Waddams", "milton"),
    ("reno", "Samir Nagheenanajar", "samir"),
    ("tulsa", "Michael Bolton", "michael"),
    ("boise", "Joanna Lee", "joanna"),
    ("austin", "Peter Gibbons", "peter"),
];

fn initech_team(store: &dyn Store, now: Millis, i: usize) -> Result<(), StoreError> {
    let (city, name, user) = INITECH_TEAMS[i];
    let title = format!("{}{}", city[..1].to_uppercase(), &city[1..]);
    store.upsert_contact(&Contact {
        id: format!("c-initech-{city}"),
        name: name.into(),
        email: format!("{user}@initech.example"),
        account: format!("Initech {title}"),
        title: "Team lead".into(),
    })?;
    store.upsert_deal(&Deal {
        id: format!("deal-initech-{city}"),
        name: format!("Initech {title} team seats"),
        account: format!("Initech {title}"),
        amount_cents: 8_000 * 100,
        stage: Stage::Qualified,
        owner: "demo@dealflow.test".into(),
        // Trialled in October; nobody has written since.
        last_touch: now - 35 * DAY,
        notes: "Trialled in October with the regional team; never followed up.".into(),
        crm: None,
    })
}

fn touch(
    store: &dyn Store,
    id: &str,
    now: Millis,
    f: impl FnOnce(&mut Deal),
) -> Result<(), StoreError> {
    if let Some(mut d) = store.get_deal(id)? {
        f(&mut d);
        d.last_touch = now;
        store.upsert_deal(&d)?;
    }
    Ok(())
}

fn note(d: &mut Deal, text: &str) {
    if !d.notes.is_empty() {
        d.notes.push('\n');
    }
    d.notes.push_str(text);
}

pub fn script() -> Vec<Event> {
    vec![
        Event {
            day: 1,
            what: "Alice (Umbrella) wrote back: legal signed off the DPA; she wants a walk-through of the order form",
            mail: Some((
                "Alice Abernathy <alice@umbrella.example>",
                "Re: DPA signed off - can you walk us through the order form?",
            )),
            apply: |s, now| {
                touch(s, "deal-umbrella", now, |d| {
                    note(d, "DPA signed off by legal (Alice, by email).");
                })
            },
        },
        Event {
            day: 2,
            what: "five Initech regional teams from the October trial landed in the CRM, untouched for 35 days",
            mail: None,
            apply: |s, now| (0..5).try_for_each(|i| initech_team(s, now, i)),
        },
        Event {
            day: 3,
            what: "another Initech team (Austin) from the October trial landed in the CRM",
            mail: None,
            apply: |s, now| initech_team(s, now, 5),
        },
        Event {
            day: 4,
            what: "Gavin (Hooli) replied: the team plan is a go if a demo lands this month",
            mail: Some((
                "Gavin Belson <gavin@hooli.example>",
                "Re: Hooli team plan - can we see a demo this month?",
            )),
            apply: |s, now| {
                touch(s, "deal-hooli", now, |d| {
                    d.stage = Stage::Qualified;
                    note(
                        d,
                        "Gavin is in for the team plan if a demo lands this month.",
                    );
                })
            },
        },
    ]
}

/// World time so far (ms), from the advances the audit log records.
pub fn elapsed(store: &dyn Store) -> Result<Millis, StoreError> {
    Ok(store
        .audit_about(WORLD_SUBJECT, 0)?
        .iter()
        .filter_map(|e| e.detail["by_ms"].as_i64())
        .sum())
}

/// The mail an advance by `by` would deliver (from, subject), without changing anything.
pub fn due(store: &dyn Store, by: Millis) -> Result<Vec<(&'static str, &'static str)>, StoreError> {
    let before = elapsed(store)?;
    Ok(passing(before, by).filter_map(|e| e.mail).collect())
}

/// The events whose day falls in world time `(before, before + by]`, in order.
fn passing(before: Millis, by: Millis) -> impl Iterator<Item = Event> {
    script()
        .into_iter()
        .filter(move |e| e.day * DAY > before && e.day * DAY <= before + by)
}

/// Moves the world forward by `by` ms at wall time `now`: open deals age by `by`, the
/// events scripted for the days passed happen (each once), and the advance is audited.
/// The mail it returns is for the caller to deliver to the emulated inbox, which lives
/// in the sandbox server, not in the store.
pub fn advance(
    store: &dyn Store,
    by: Millis,
    now: Millis,
    actor: &str,
) -> Result<Advanced, StoreError> {
    let before = elapsed(store)?;
    let after = before + by;
    let mut aged = 0;
    for mut deal in store.list_deals()? {
        if !deal.stage.is_closed() {
            deal.last_touch = deal.last_touch.saturating_sub(by);
            store.upsert_deal(&deal)?;
            aged += 1;
        }
    }
    let mut done = Advanced {
        aged,
        ..Advanced::default()
    };
    for e in passing(before, by) {
        (e.apply)(store, now)?;
        done.happened.push(e.what);
        done.mail.extend(e.mail);
    }
    store.append_audit(NewAuditEntry {
        ts: now,
        actor: actor.into(),
        surface: Some(Surface::Cli),
        event: "sandbox.advanced".into(),
        action_id: Some(WORLD_SUBJECT.into()),
        outcome: "ok".into(),
        detail: serde_json::json!({
            "by_ms": by,
            "world_days": after as f64 / DAY as f64,
            "events": done.happened,
        }),
    })?;
    Ok(done)
}
