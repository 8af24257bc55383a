//! The consent rules as a table of examples (surface × kind × autonomy × store facts),
//! and properties over what the store decides: no payload field lowers the gate below
//! what the store's facts require.

#![allow(clippy::unwrap_used)]

use dealflow::core::budget::{Unreviewed, Window, budget_keys};
use dealflow::core::consent::facts::DealFacts;
use dealflow::core::consent::{Gate, GateFacts, decide};
use dealflow::core::domain::{
    Action, ActionKind, ActionParams, ActionState, Email, Stage, Surface,
};
use dealflow::core::permissions::budget_change as parse_change;
use dealflow::core::permissions::{
    Approver, AutoApproveRule, Autonomy, CloseWonRule, Permissions, RulePause,
};
use dealflow::runtime::facts::decision_at;
use dealflow::runtime::review::Reviewer;
use dealflow::store::{SqliteStore, Store};
use proptest::prelude::*;

const BIG: i64 = 25_000_000; // $250,000
const SMALL: i64 = 950_000; // $9,500

fn email(to: &str) -> ActionParams {
    ActionParams::SendEmail(Email {
        to: vec![to.into()],
        cc: vec![],
        subject: "s".into(),
        body: "b".into(),
        deal_id: None,
    })
}

fn close(won: bool, payload_amount: i64) -> ActionParams {
    ActionParams::CloseDeal {
        revision: None,
        deal_id: "deal-x".into(),
        won,
        amount_cents: payload_amount,
    }
}

fn update(stage: Option<Stage>, amount: Option<i64>) -> ActionParams {
    ActionParams::UpdateDeal {
        revision: None,
        deal_id: "deal-x".into(),
        stage,
        amount_cents: amount,
        notes: None,
    }
}

fn deal(amount: i64) -> GateFacts {
    GateFacts {
        now: Some(1_000),
        deal: Some(DealFacts {
            account: "Stark".into(),
            amount_cents: amount,
            stage: Stage::Proposal,
        }),
        ..GateFacts::default()
    }
}

fn unknown(who: &str) -> GateFacts {
    GateFacts {
        now: Some(1_000),
        unknown_counterparties: vec![who.into()],
        ..GateFacts::default()
    }
}

/// `n` earlier `kind` runs without review to `keys`, a minute apart, the last one a
/// minute before `now`.
fn ran(kind: ActionKind, keys: &[&str], n: usize, now: i64) -> Vec<Unreviewed> {
    (1..=n as i64)
        .map(|i| Unreviewed {
            kind,
            counterparties: keys.iter().map(|k| k.to_string()).collect(),
            at: now - i * 60_000,
        })
        .collect()
}

const NOW: i64 = 1_700_470_800_000;

fn spent(kind: ActionKind, keys: &[&str], n: usize) -> GateFacts {
    GateFacts {
        now: Some(NOW),
        unreviewed: ran(kind, keys, n, NOW),
        ..GateFacts::default()
    }
}

fn budgeted(kind: ActionKind, level: Autonomy, spec: &str, each: bool) -> Permissions {
    let mut p = perms(kind, level);
    p.apply(&parse_change(kind.as_str(), spec, each).unwrap())
        .unwrap();
    p
}

/// The defaults with one auto-approve rule for email to @initech.example, paused or not.
fn ruled(paused: Option<RulePause>) -> Permissions {
    let mut p = Permissions::default();
    p.auto_rules.push(AutoApproveRule {
        id: "r1".into(),
        kind: ActionKind::SendEmail,
        target: "@initech.example".into(),
        min_confidence: 0.9,
        created_at: NOW - 86_400_000,
        expires_at: NOW + 86_400_000,
        paused,
    });
    p
}

fn perms(kind: ActionKind, level: Autonomy) -> Permissions {
    let mut p = Permissions::default();
    p.autonomy.insert(kind, level);
    p
}

fn lead_perms() -> Permissions {
    Permissions {
        close_won: CloseWonRule {
            level: Autonomy::Ciba,
            approver: Approver::TeamLead("auth0|lead".into()),
        },
        ..Permissions::default()
    }
}

/// (name, surface, action, permissions, facts, gate, a reason that must be in the chain)
type Row = (
    &'static str,
    Surface,
    ActionParams,
    Permissions,
    GateFacts,
    &'static str,
    &'static str,
);

fn table() -> Vec<Row> {
    use Surface::*;
    let auto = |k| perms(k, Autonomy::Auto);
    vec![
        (
            "a read needs nothing, on any surface",
            Mcp,
            ActionParams::ListSlackChannels {},
            Permissions::default(),
            GateFacts::default(),
            "allow",
            "read: no side effects",
        ),
        (
            "an email on auto to a known contact runs",
            ActionCenter,
            email("bill@initech.example"),
            auto(ActionKind::SendEmail),
            GateFacts::at(1),
            "allow",
            "autonomy for send_email: auto",
        ),
        (
            "an email on auto to an unknown address is reviewed",
            ActionCenter,
            email("pay@attacker.example"),
            auto(ActionKind::SendEmail),
            unknown("pay@attacker.example"),
            "review",
            "not a known contact",
        ),
        (
            "in Chat the unknown address is an inline confirmation",
            Chat,
            email("pay@attacker.example"),
            auto(ActionKind::SendEmail),
            unknown("pay@attacker.example"),
            "step_up",
            "confirm inline",
        ),
        (
            "over MCP it goes to the device",
            Mcp,
            email("pay@attacker.example"),
            auto(ActionKind::SendEmail),
            unknown("pay@attacker.example"),
            "ciba",
            "external agent write over MCP",
        ),
        (
            "a close names the store's amount, not the payload's zero",
            ActionCenter,
            close(false, 0),
            Permissions::default(),
            deal(BIG),
            "step_up",
            "amount $250,000 > threshold $50,000",
        ),
        (
            "a small close lost is reviewed",
            ActionCenter,
            close(false, 0),
            Permissions::default(),
            deal(SMALL),
            "review",
            "autonomy for close_deal: review",
        ),
        (
            "a close as won needs the close-won rule",
            ActionCenter,
            close(true, 0),
            Permissions::default(),
            deal(SMALL),
            "step_up",
            "closing as won needs step_up by you",
        ),
        (
            "an update to closed_won is gated as the close it is",
            ActionCenter,
            update(Some(Stage::ClosedWon), None),
            auto(ActionKind::UpdateDeal),
            deal(SMALL),
            "step_up",
            "closing as won",
        ),
        (
            "an update that lowers a big deal's amount is at the store's amount",
            ActionCenter,
            update(None, Some(0)),
            auto(ActionKind::UpdateDeal),
            deal(BIG),
            "step_up",
            "amount $250,000",
        ),
        (
            "a notes-only update of a big deal follows autonomy",
            ActionCenter,
            update(Some(Stage::Negotiation), None),
            auto(ActionKind::UpdateDeal),
            deal(BIG),
            "allow",
            "autonomy for update_deal: auto",
        ),
        (
            "a lead's rule goes to the lead's device, even from the CLI",
            Cli,
            close(true, 0),
            lead_perms(),
            deal(SMALL),
            "ciba",
            "closing as won needs ciba by team lead auth0|lead",
        ),
        (
            "a denied kind never runs",
            Chat,
            email("bill@initech.example"),
            perms(ActionKind::SendEmail, Autonomy::Deny),
            GateFacts::at(1),
            "deny",
            "autonomy for send_email: deny",
        ),
        (
            "split amounts for one account add up, however the name is spelled",
            ActionCenter,
            ActionParams::CreateDeal {
                name: "Wayne part 2".into(),
                account: "WAYNE ".into(),
                amount_cents: 4_000_000,
                stage: Stage::Prospecting,
            },
            Permissions::default(),
            GateFacts {
                now: Some(1_000),
                recent_amounts: vec![("wayne".into(), 4_000_000, 900)],
                ..GateFacts::default()
            },
            "step_up",
            "split amounts",
        ),
        (
            "the 21st email on auto under a 20 per day budget is reviewed",
            ActionCenter,
            email("bill@initech.example"),
            budgeted(ActionKind::SendEmail, Autonomy::Auto, "20/day", false),
            spent(ActionKind::SendEmail, &["@initech.example"], 20),
            "review",
            "budget: 20 send_email per day reached (20 ran without review since 2023-11-20 08:40 UTC)",
        ),
        (
            "the 20th runs",
            ActionCenter,
            email("bill@initech.example"),
            budgeted(ActionKind::SendEmail, Autonomy::Auto, "20/day", false),
            spent(ActionKind::SendEmail, &["@initech.example"], 19),
            "allow",
            "autonomy for send_email: auto",
        ),
        (
            "runs older than the window do not count",
            ActionCenter,
            email("bill@initech.example"),
            budgeted(ActionKind::SendEmail, Autonomy::Auto, "5/hour", false),
            GateFacts {
                now: Some(NOW),
                unreviewed: ran(
                    ActionKind::SendEmail,
                    &["@initech.example"],
                    5,
                    NOW - 3_600_000,
                ),
                ..GateFacts::default()
            },
            "allow",
            "autonomy for send_email: auto",
        ),
        (
            "other kinds do not spend an email budget",
            ActionCenter,
            email("bill@initech.example"),
            budgeted(ActionKind::SendEmail, Autonomy::Auto, "1/day", false),
            spent(ActionKind::PostSlack, &["#deals"], 5),
            "allow",
            "autonomy for send_email: auto",
        ),
        (
            "a per-counterparty budget counts the recipient's domain",
            ActionCenter,
            email("ann@initech.example"),
            budgeted(ActionKind::SendEmail, Autonomy::Auto, "3/day", true),
            spent(ActionKind::SendEmail, &["@initech.example"], 3),
            "review",
            "budget: 3 send_email per day to @initech.example reached",
        ),
        (
            "and leaves other domains alone",
            ActionCenter,
            email("ann@acme.example"),
            budgeted(ActionKind::SendEmail, Autonomy::Auto, "3/day", true),
            spent(ActionKind::SendEmail, &["@initech.example"], 3),
            "allow",
            "autonomy for send_email: auto",
        ),
        (
            "in Chat a spent budget is an inline confirmation",
            Chat,
            ActionParams::PostSlack {
                channel: "#deals".into(),
                text: "t".into(),
            },
            budgeted(ActionKind::PostSlack, Autonomy::Auto, "5/hour", false),
            spent(ActionKind::PostSlack, &["#deals"], 5),
            "step_up",
            "budget: 5 post_slack per hour reached",
        ),
        (
            "an auto-approve rule turns a review into an allow",
            ActionCenter,
            email("bill@initech.example"),
            ruled(None),
            GateFacts::at(NOW),
            "allow",
            "auto-approve rule r1: send_email to @initech.example",
        ),
        (
            "a paused rule approves nothing, and the chain says why",
            ActionCenter,
            email("bill@initech.example"),
            ruled(Some(RulePause {
                action_id: "act-no".into(),
                by: "rejected".into(),
                target: "bill@initech.example".into(),
                at: NOW - 60_000,
                reason: None,
            })),
            GateFacts::at(NOW),
            "review",
            "auto-approve rule r1 is paused: you rejected act-no (bill@initech.example) at 2023-11-20 08:59 UTC",
        ),
        (
            "a spent budget does not lower a step-up",
            ActionCenter,
            email("bill@initech.example"),
            budgeted(ActionKind::SendEmail, Autonomy::StepUp, "1/day", false),
            spent(ActionKind::SendEmail, &["@initech.example"], 5),
            "step_up",
            "autonomy for send_email: step_up",
        ),
    ]
}

#[test]
fn the_rule_table_by_example() {
    for (name, surface, action, perms, facts, gate, reason) in table() {
        let d = decide(surface, &action, &perms, 0.95, &facts);
        assert_eq!(d.gate().name(), gate, "{name}: {}", d.explain());
        assert!(
            d.reasons().iter().any(|r| r.contains(reason)),
            "{name}: {reason:?} not in {}",
            d.explain()
        );
    }
}

#[test]
fn every_rule_is_named_and_documented() {
    let rules = dealflow::core::consent::rules::RULES;
    assert!(rules.len() >= 10);
    for r in rules {
        assert!(!r.name.is_empty() && r.doc.len() > 10, "{}", r.name);
    }
    let mut names: Vec<_> = rules.iter().map(|r| r.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), rules.len(), "rule names are unique");
}

fn arb_surface() -> impl Strategy<Value = Surface> {
    prop::sample::select(vec![
        Surface::ActionCenter,
        Surface::Chat,
        Surface::Mcp,
        Surface::Cli,
        Surface::Batch,
    ])
}

fn arb_deal_action() -> impl Strategy<Value = ActionParams> {
    prop_oneof![
        (any::<bool>(), 0i64..100_000_000).prop_map(|(won, a)| close(won, a)),
        (
            prop::option::of(prop::sample::select(Stage::ALL.to_vec())),
            prop::option::of(0i64..100_000_000)
        )
            .prop_map(|(s, a)| update(s, a)),
    ]
}

fn arb_perms() -> impl Strategy<Value = Permissions> {
    (
        prop::sample::select(Autonomy::ALL.to_vec()),
        prop::sample::select(Autonomy::ALL.to_vec()),
        prop::option::of(0.6f64..1.0),
    )
        .prop_map(|(close_level, update_level, auto_at)| {
            let mut p = Permissions::default();
            p.autonomy.insert(ActionKind::CloseDeal, close_level);
            p.autonomy.insert(ActionKind::UpdateDeal, update_level);
            p.autonomy.insert(ActionKind::SendEmail, update_level);
            p.confidence.auto_approve_at = auto_at;
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever amount the payload states, an action that closes a deal or changes its
    /// amount needs at least step-up when the store's deal is over the threshold.
    #[test]
    fn payload_amounts_never_lower_the_gate_below_the_stores(
        s in arb_surface(), a in arb_deal_action(), p in arb_perms(),
        stored in 0i64..100_000_000, c in 0.0f64..=1.0,
    ) {
        let d = decide(s, &a, &p, c, &deal(stored));
        let touches_amount = matches!(a, ActionParams::CloseDeal { .. })
            || matches!(a, ActionParams::UpdateDeal { amount_cents: Some(_), .. })
            || matches!(a, ActionParams::UpdateDeal { stage: Some(st), .. } if st.is_closed());
        if touches_amount && stored > p.step_up_amount_cents {
            prop_assert!(d.gate().rank() >= Gate::StepUp { reason: String::new() }.rank(),
                "{}", d.explain());
        }
        // Turning an update into a close can only add friction.
        if let ActionParams::UpdateDeal { stage: Some(Stage::ClosedWon), .. } = a {
            prop_assert!(d.gate().rank() >= 2, "{}", d.explain());
        }
    }

    /// An email to an address the store does not know is never sent unseen.
    #[test]
    fn unknown_recipients_are_always_looked_at(
        s in arb_surface(), p in arb_perms(), c in 0.0f64..=1.0, to in "[a-z]{1,8}@[a-z]{1,8}\\.example",
    ) {
        let d = decide(s, &email(&to), &p, c, &unknown(&to));
        prop_assert!(d.gate().rank() >= Gate::Review.rank(), "{}", d.explain());
    }
}

fn arb_budgeted_action() -> impl Strategy<Value = ActionParams> {
    prop_oneof![
        "[a-c]{1,2}@(a|b)\\.example".prop_map(|to| email(&to)),
        prop::sample::select(vec!["#deals", "#wins"]).prop_map(|c| ActionParams::PostSlack {
            channel: c.into(),
            text: "t".into(),
        }),
        arb_deal_action(),
        Just(ActionParams::ListDeals { stage: None }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A budget never lowers a gate: whatever the surface, autonomy, confidence routing,
    /// action and history, the gate with budgets is at least the gate without; and a
    /// spent budget makes anything that would have run without review wait for a person.
    #[test]
    fn a_budget_never_lowers_a_gate(
        s in arb_surface(), a in arb_budgeted_action(), mut p in arb_perms(),
        c in 0.0f64..=1.0, n in 0usize..30, limit in 0u32..25, each in any::<bool>(),
        per in prop::sample::select(Window::ALL.to_vec()), stored in 0i64..100_000_000,
    ) {
        p.autonomy.insert(ActionKind::PostSlack, p.autonomy_for(ActionKind::SendEmail));
        let kind = a.kind();
        let keys = budget_keys(&a);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let facts = GateFacts {
            unreviewed: ran(kind, &keys, n, NOW),
            now: Some(NOW),
            ..deal(stored)
        };
        p.budgets.clear();
        let without = decide(s, &a, &p, c, &facts);
        if kind.is_write() {
            p.apply(&dealflow::core::permissions::PermissionChange::SetBudget {
                budget: dealflow::core::budget::Budget { kind, limit, per, each_counterparty: each },
            }).unwrap();
        }
        let with = decide(s, &a, &p, c, &facts);
        prop_assert!(with.gate().rank() >= without.gate().rank(),
            "{} / {}", without.explain(), with.explain());
        let spent = n >= limit as usize && (!each || !keys.is_empty());
        if kind.is_write() && spent {
            prop_assert!(with.gate().rank() >= Gate::Review.rank(), "{}", with.explain());
        }
        if !spent || kind.is_read() {
            prop_assert_eq!(with.gate(), without.gate());
        }
        if kind.is_write() && without.gate() == &Gate::Allow && spent {
            prop_assert!(with.explain().contains("budget:"), "{}", with.explain());
        }
    }
}

fn action(id: &str, params: ActionParams) -> Action {
    Action {
        id: id.into(),
        original: params.clone(),
        params,
        state: ActionState::Proposed,
        version: 1,
        surface: Surface::ActionCenter,
        confidence: 0.95,
        justification: "t".into(),
        title: "t".into(),
        created_at: 1,
        updated_at: 1,
        outcome: None,
        evidence: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// On a real store with the demo pipeline: any edit of a close (which deal, won or
    /// lost, any amount) is gated on the store's deal, so a close of a deal over the
    /// threshold needs step-up however the payload was edited.
    #[test]
    fn store_backed_edits_cannot_lower_a_close(
        target in prop::sample::select(vec!["deal-acme", "deal-stark", "deal-hooli", "deal-initech"]),
        won in any::<bool>(), amount in 0i64..100_000_000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        dealflow::sandbox::demo::seed(&store, 1).unwrap();
        store.insert_action(&action("act-c", close(true, 0))).unwrap();
        let me = Reviewer { actor: "user:auth0|rep".into(), surface: Surface::Cli };
        let edited = ActionParams::CloseDeal { revision: None, deal_id: target.into(), won, amount_cents: amount };
        let a = me.edit(&store, "act-c", &edited, 2).unwrap();
        let real = store.get_deal(target).unwrap().unwrap();
        let d = decision_at(&store, &a, 3).unwrap();
        let perms = store.load_permissions().unwrap();
        if real.amount_cents > perms.step_up_amount_cents || won {
            prop_assert!(d.gate().rank() >= 2, "{target} {}: {}", real.amount_cents, d.explain());
        }
        // The stored payload carries the store's amount, not the editor's.
        prop_assert_eq!(a.params.amount_cents(), Some(real.amount_cents));
    }
}
