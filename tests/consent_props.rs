//! Property tests for the consent engine's invariants (architecture: "Invariants").

#![allow(clippy::unwrap_used)]

use dealflow::core::consent::{Consent, ConsentError, Evidence, Gate, gate};
use dealflow::core::domain::{ActionKind, ActionParams, Email, Stage, Surface};
use dealflow::core::permissions::{Approver, Autonomy, PermissionChange, Permissions};
use proptest::prelude::*;

fn arb_stage() -> impl Strategy<Value = Stage> {
    prop::sample::select(Stage::ALL.to_vec())
}

fn arb_email() -> impl Strategy<Value = Email> {
    (
        "[a-z]{1,8}@[a-z]{1,8}\\.example",
        ".{0,20}",
        ".{0,60}",
        prop::option::of("deal-[a-z]{1,5}"),
    )
        .prop_map(|(to, subject, body, deal_id)| Email {
            to: vec![to],
            cc: vec![],
            subject,
            body,
            deal_id,
        })
}

fn arb_amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        0i64..20_000_000,
        4_990_000i64..5_010_000,
        0i64..100_000_000_000
    ]
}

fn arb_params() -> impl Strategy<Value = ActionParams> {
    prop_oneof![
        prop::option::of(arb_stage()).prop_map(|stage| ActionParams::ListDeals { stage }),
        "deal-[a-z]{1,6}".prop_map(|deal_id| ActionParams::GetDeal { deal_id }),
        ".{0,10}".prop_map(|query| ActionParams::SearchContacts { query }),
        (0i64..1_000, 1_001i64..10_000)
            .prop_map(|(from, to)| ActionParams::CheckCalendar { from, to }),
        Just(ActionParams::ListSlackChannels {}),
        arb_email().prop_map(ActionParams::SendEmail),
        arb_email().prop_map(ActionParams::DraftEmail),
        (".{1,20}", 0i64..1_000).prop_map(|(title, start)| ActionParams::ScheduleMeeting {
            title,
            attendees: vec!["a@b.example".into()],
            start,
            end: start + 1_800_000,
            description: String::new(),
        }),
        ("#[a-z]{1,8}", ".{1,40}")
            .prop_map(|(channel, text)| ActionParams::PostSlack { channel, text }),
        (".{1,12}", arb_amount(), arb_stage()).prop_map(|(name, amount_cents, stage)| {
            ActionParams::CreateDeal {
                account: name.clone(),
                name,
                amount_cents,
                stage,
            }
        }),
        (
            "deal-[a-z]{1,6}",
            prop::option::of(arb_stage()),
            prop::option::of(arb_amount())
        )
            .prop_map(|(deal_id, stage, amount_cents)| ActionParams::UpdateDeal {
                deal_id,
                stage,
                amount_cents,
                notes: None
            }),
        ("deal-[a-z]{1,6}", any::<bool>(), arb_amount()).prop_map(
            |(deal_id, won, amount_cents)| {
                ActionParams::CloseDeal {
                    deal_id,
                    won,
                    amount_cents,
                }
            }
        ),
    ]
}

fn arb_autonomy() -> impl Strategy<Value = Autonomy> {
    prop::sample::select(Autonomy::ALL.to_vec())
}

fn arb_approver() -> impl Strategy<Value = Approver> {
    prop_oneof![
        Just(Approver::User),
        "auth0\\|[a-z0-9]{4}".prop_map(Approver::TeamLead)
    ]
}

fn arb_perms() -> impl Strategy<Value = Permissions> {
    (
        prop::collection::vec(arb_autonomy(), ActionKind::ALL.len()),
        arb_amount(),
        prop::sample::select(vec![Autonomy::StepUp, Autonomy::Ciba, Autonomy::Deny]),
        arb_approver(),
        prop::option::of(0.0f64..=1.0),
        0.0f64..=1.0,
        any::<bool>(),
    )
        .prop_map(
            |(levels, threshold, cw_level, cw_approver, at, below, mcp)| {
                let mut p = Permissions::default();
                for (k, l) in ActionKind::ALL.into_iter().zip(levels) {
                    p.autonomy.insert(k, l);
                }
                p.step_up_amount_cents = threshold;
                p.close_won.level = cw_level;
                p.close_won.approver = cw_approver;
                p.confidence.auto_approve_at = at;
                p.confidence.force_review_below = below;
                p.mcp_writes_enabled = mcp;
                p
            },
        )
}

fn arb_surface() -> impl Strategy<Value = Surface> {
    prop::sample::select(Surface::ALL.to_vec())
}

fn arb_confidence() -> impl Strategy<Value = f64> {
    prop_oneof![0.0f64..=1.0, any::<f64>(), Just(f64::NAN)]
}

fn arb_evidence() -> impl Strategy<Value = Evidence> {
    prop_oneof![
        Just(Evidence::Autonomous),
        Just(Evidence::Reviewed {
            actor: "user:ana".into(),
            at: 1
        }),
        Just(Evidence::SteppedUp {
            actor: "user:ana".into(),
            at: 1
        }),
        // Who really approved (the verified token's sub): the named lead, the rep, or
        // someone else entirely.
        (arb_approver(), 0..3u8).prop_map(|(approver, who)| Evidence::Ciba {
            sub: match (who, &approver) {
                (0, Approver::TeamLead(lead)) => lead.clone(),
                (0 | 1, _) => "auth0|rep".into(),
                _ => "auth0|mallory".into(),
            },
            approver,
            auth_req_id: "req".into(),
            binding_message: "dealflow: 1 action".into(),
            approved_at: 1,
        }),
    ]
}

fn evidence_rank(e: &Evidence) -> u8 {
    match e {
        Evidence::Autonomous => 0,
        Evidence::Reviewed { .. } => 1,
        Evidence::SteppedUp { .. } => 2,
        Evidence::Ciba { .. } => 3,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Invariant 1: a consent exists only when the evidence satisfies the gate.
    #[test]
    fn consent_only_when_the_gate_is_satisfied(
        s in arb_surface(), a in arb_params(), p in arb_perms(), c in arb_confidence(), e in arb_evidence()
    ) {
        let d = gate(s, &a, &p, c);
        let granted = Consent::grant(&d, &a, e.clone());
        let satisfies = match d.gate() {
            Gate::Deny { .. } => false,
            // A lead's rule is met only by the lead's own device.
            Gate::Ciba { approver, .. } => matches!(&e, Evidence::Ciba { approver: x, sub, .. }
                if x == approver && match approver {
                    Approver::TeamLead(lead) => sub == lead,
                    Approver::User => true,
                }),
            g => evidence_rank(&e) >= g.rank(),
        };
        prop_assert_eq!(granted.is_ok(), satisfies, "gate {:?} evidence {:?}", d.gate(), e);
        if let Ok(consent) = granted {
            prop_assert!(consent.covers(&a));
        }
    }

    /// An edit after the gate voids the consent: it covers exactly one payload.
    #[test]
    fn consent_does_not_cover_an_edited_payload(
        s in arb_surface(), a in arb_params(), b in arb_params(), p in arb_perms(), c in 0.0f64..=1.0
    ) {
        let d = gate(s, &a, &p, c);
        if let Ok(consent) = Consent::grant(&d, &a, Evidence::Ciba {
            approver: Approver::User, sub: "auth0|rep".into(), auth_req_id: "r".into(), binding_message: "m".into(), approved_at: 0,
        }) {
            prop_assert_eq!(consent.covers(&b), a == b);
        }
        if a != b {
            let other = Consent::grant(&d, &b, Evidence::SteppedUp { actor: "u".into(), at: 0 });
            prop_assert_eq!(other.err(), Some(ConsentError::PayloadMismatch));
        }
    }

    /// Low confidence is always reviewed: a write below force_review_below never runs unasked.
    #[test]
    fn low_confidence_is_always_reviewed(
        s in arb_surface(), a in arb_params(), p in arb_perms(), c in arb_confidence()
    ) {
        let effective = if (0.0..=1.0).contains(&c) { c } else { 0.0 };
        if a.kind().is_write() && effective < p.confidence.force_review_below {
            prop_assert!(gate(s, &a, &p, c).gate().rank() >= Gate::Review.rank());
        }
    }

    /// MCP writes never need less than CIBA.
    #[test]
    fn mcp_writes_never_below_ciba(a in arb_params(), p in arb_perms(), c in arb_confidence()) {
        let d = gate(Surface::Mcp, &a, &p, c);
        if a.kind().is_write() {
            prop_assert!(matches!(d.gate(), Gate::Ciba { .. } | Gate::Deny { .. }), "{:?}", d.gate());
        }
    }

    /// Reads need no consent (unless the user denied the kind outright).
    #[test]
    fn reads_need_no_consent(s in arb_surface(), a in arb_params(), p in arb_perms(), c in arb_confidence()) {
        if a.kind().is_read() {
            let d = gate(s, &a, &p, c);
            let denied = p.autonomy_for(a.kind()) == Autonomy::Deny;
            prop_assert_eq!(matches!(d.gate(), Gate::Deny { .. }), denied);
            prop_assert_eq!(matches!(d.gate(), Gate::Allow), !denied);
        }
    }

    /// Sensitive data raises the gate: amounts over the threshold need at least step-up,
    /// closing as won at least the close-won rule, and the rule's approver is the one asked.
    #[test]
    fn sensitive_operations_step_up(s in arb_surface(), a in arb_params(), p in arb_perms(), c in arb_confidence()) {
        let d = gate(s, &a, &p, c);
        if a.kind().is_write() && a.amount_cents().is_some_and(|x| x > p.step_up_amount_cents) {
            prop_assert!(d.gate().rank() >= 2, "{:?}", d.gate());
        }
        if let ActionParams::CloseDeal { won: true, .. } = a {
            prop_assert!(d.gate().rank() >= p.close_won.level as u8);
            if let Gate::Ciba { approver, .. } = d.gate()
                && p.close_won.level == Autonomy::Ciba {
                    prop_assert_eq!(approver, &p.close_won.approver);
                }
        }
        // The reason chain always explains the outcome.
        prop_assert!(!d.reasons().is_empty());
    }

    /// The user's own autonomy setting is a floor the engine never goes under, except
    /// for the opt-in auto-approve of a reviewed kind at high confidence.
    #[test]
    fn the_engine_never_loosens_a_setting(s in arb_surface(), a in arb_params(), p in arb_perms(), c in arb_confidence()) {
        let d = gate(s, &a, &p, c);
        let set = p.autonomy_for(a.kind());
        if a.kind().is_write() {
            let skip = s == Surface::ActionCenter
                && set == Autonomy::Review
                && p.confidence.auto_approve_at.is_some_and(|at| (0.0..=1.0).contains(&c) && c >= at);
            if !skip {
                prop_assert!(d.gate().rank() >= set as u8, "set {:?} gate {:?}", set, d.gate());
            }
        }
    }

    /// Invariant 2: nothing the agent can call is a permission change. Every payload the
    /// agent can produce is an ActionParams; none of them reads as a PermissionChange.
    #[test]
    fn no_agent_payload_is_a_permission_change(a in arb_params()) {
        let j = serde_json::to_value(&a).unwrap();
        prop_assert!(serde_json::from_value::<PermissionChange>(j).is_err());
    }
}

#[test]
fn the_reason_chain_reads_like_the_design() {
    let p = Permissions::default();
    let a = ActionParams::CreateDeal {
        name: "Acme".into(),
        account: "Acme".into(),
        amount_cents: 7_500_000,
        stage: Stage::Qualified,
    };
    let d = gate(Surface::ActionCenter, &a, &p, 0.95);
    assert_eq!(
        d.gate().to_string(),
        "step-up: amount $75,000 > threshold $50,000"
    );
    assert_eq!(d.band(), "≥ 0.90");
}

#[test]
fn no_action_kind_touches_permissions() {
    for k in ActionKind::ALL {
        assert!(!k.as_str().contains("permission"), "{k}");
    }
}
