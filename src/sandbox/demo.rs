//! Demo pipeline data for the sandbox: a believable quarter for one rep, with a few
//! suggestions already waiting in the Action Center.

use crate::core::audit::NewAuditEntry;
use crate::core::domain::{
    Action, ActionParams, ActionState, Contact, Deal, Email, Millis, Stage, Surface,
};
use crate::store::{Store, StoreError};

const DAY: Millis = 86_400_000;

pub fn deals(now: Millis) -> Vec<Deal> {
    let d =
        |id: &str, name: &str, account: &str, amount: i64, stage, days_ago: i64, notes: &str| {
            Deal {
                id: id.into(),
                name: name.into(),
                account: account.into(),
                amount_cents: amount * 100,
                stage,
                owner: "demo@dealflow.test".into(),
                last_touch: now - days_ago * DAY,
                notes: notes.into(),
                crm: None,
            }
        };
    vec![
        d(
            "deal-acme",
            "Acme platform renewal",
            "Acme Corp",
            75_000,
            Stage::Negotiation,
            9,
            "Procurement asked for a 3-year option.",
        ),
        d(
            "deal-globex",
            "Globex analytics pilot",
            "Globex",
            18_000,
            Stage::Proposal,
            2,
            "Pilot scope agreed with Hank.",
        ),
        d(
            "deal-initech",
            "Initech seat expansion",
            "Initech",
            42_000,
            Stage::Qualified,
            15,
            "Champion Bill went quiet after the demo.",
        ),
        d(
            "deal-umbrella",
            "Umbrella security add-on",
            "Umbrella",
            120_000,
            Stage::Negotiation,
            4,
            "Legal review of the DPA in progress.",
        ),
        d(
            "deal-hooli",
            "Hooli team plan",
            "Hooli",
            9_500,
            Stage::Prospecting,
            21,
            "",
        ),
        d(
            "deal-stark",
            "Stark Industries enterprise",
            "Stark Industries",
            250_000,
            Stage::Proposal,
            6,
            "Pepper wants a security review call.",
        ),
    ]
}

pub fn contacts() -> Vec<Contact> {
    let c = |id: &str, name: &str, email: &str, account: &str, title: &str| Contact {
        id: id.into(),
        name: name.into(),
        email: email.into(),
        account: account.into(),
        title: title.into(),
    };
    vec![
        c(
            "c-wile",
            "Wile E. Coyote",
            "wile@acme.example",
            "Acme Corp",
            "Head of Procurement",
        ),
        c(
            "c-hank",
            "Hank Scorpio",
            "hank@globex.example",
            "Globex",
            "CEO",
        ),
        c(
            "c-bill",
            "Bill Lumbergh",
            "bill@initech.example",
            "Initech",
            "VP Engineering",
        ),
        c(
            "c-alice",
            "Alice Abernathy",
            "alice@umbrella.example",
            "Umbrella",
            "CISO",
        ),
        c(
            "c-gavin",
            "Gavin Belson",
            "gavin@hooli.example",
            "Hooli",
            "CEO",
        ),
        c(
            "c-pepper",
            "Pepper Potts",
            "pepper@stark.example",
            "Stark Industries",
            "COO",
        ),
    ]
}

/// Suggestions as the offline planner would make them.
pub fn suggestions(now: Millis) -> Vec<Action> {
    let mk = |id: &str, params: ActionParams, title: &str, why: &str, confidence: f64| Action {
        id: id.into(),
        original: params.clone(),
        params,
        state: ActionState::Proposed,
        version: 1,
        surface: Surface::ActionCenter,
        confidence,
        justification: why.into(),
        title: title.into(),
        created_at: now,
        updated_at: now,
        outcome: None,
        evidence: None,
    };
    vec![
        mk(
            "act-demo-initech-followup",
            ActionParams::SendEmail(Email {
                to: vec!["bill@initech.example".into()],
                cc: vec![],
                subject: "Following up on the Initech seat expansion".into(),
                body: "Hi Bill,\n\nThanks again for the demo two weeks ago. Do you have 20 minutes this week to go through the seat plan?\n\nBest,\nDemo Rep".into(),
                deal_id: Some("deal-initech".into()),
            }),
            "Follow up with Bill (Initech)",
            "No touch in 15 days on a qualified $42,000 deal; the champion went quiet after the demo.",
            0.92,
        ),
        mk(
            "act-demo-stark-call",
            ActionParams::ScheduleMeeting {
                title: "Stark Industries security review".into(),
                attendees: vec!["pepper@stark.example".into()],
                start: now + 2 * DAY,
                end: now + 2 * DAY + 3_600_000,
                description: "Security review call requested by Pepper.".into(),
            },
            "Book the security review with Pepper",
            "Deal notes say Pepper wants a security review call; the proposal is out.",
            0.81,
        ),
        mk(
            "act-demo-acme-close",
            ActionParams::CloseDeal {
                deal_id: "deal-acme".into(),
                won: true,
                amount_cents: 7_500_000,
                revision: None,
            },
            "Close Acme renewal as won",
            "Procurement confirmed the 3-year option by email.",
            0.55,
        ),
        mk(
            "act-demo-hooli-slack",
            ActionParams::PostSlack {
                channel: "#deals".into(),
                text: "Hooli team plan has had no touch in 21 days - anyone have a warm intro to Gavin?".into(),
            },
            "Ask #deals for a Hooli intro",
            "Stale prospecting deal with no contact activity.",
            0.7,
        ),
    ]
}

/// Seeds an empty store; a store that already has deals is left alone.
pub fn seed(store: &dyn Store, now: Millis) -> Result<bool, StoreError> {
    if !store.list_deals()?.is_empty() {
        return Ok(false);
    }
    for d in deals(now) {
        store.upsert_deal(&d)?;
    }
    for c in contacts() {
        store.upsert_contact(&c)?;
    }
    for a in suggestions(now) {
        store.insert_action(&a)?;
        store.append_audit(NewAuditEntry {
            ts: now,
            actor: "agent:offline-planner".into(),
            surface: Some(a.surface),
            event: "action.proposed".into(),
            action_id: Some(a.id.clone()),
            outcome: "ok".into(),
            detail: serde_json::json!({
                "kind": a.kind(),
                "title": a.title,
                "confidence": a.confidence,
                "justification": a.justification,
            }),
        })?;
    }
    Ok(true)
}
