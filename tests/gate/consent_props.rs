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
                revision: None,
                deal_id,
                stage,
                amount_cents,
                notes: None
            }),
        ("deal-[a-z]{1,6}", any::<bool>(), arb_amount()).prop_map(
            |(deal_id, won, amount_cents)| {
                ActionParams::CloseDeal {
                    revision: None,
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

// ------------------------------------------------- what the store decides, not the payload
//
// The properties above test the pure gate with the payload's own claims. These run the
// real decision (`decision_for`: stored permissions, the store's deals and contacts) on a
// real SQLite store seeded with the demo pipeline, after edits a person or an attacker
// could make.

mod store_backed {
    use super::{arb_perms, arb_stage};
    use dealflow::core::audit::NewAuditEntry;
    use dealflow::core::consent::Gate;
    use dealflow::core::domain::{Action, ActionParams, ActionState, Email, Surface};
    use dealflow::core::permissions::{Autonomy, PermissionChange, Permissions, address_key};
    use dealflow::runtime::review::{ReviewError, Reviewer, decision_for};
    use dealflow::store::{SqliteStore, Store};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    const DEALS: [&str; 7] = [
        "deal-acme",
        "deal-globex",
        "deal-initech",
        "deal-umbrella",
        "deal-hooli",
        "deal-stark",
        "deal-nope",
    ];

    /// A contact the demo store knows, or an address it has never seen.
    fn arb_address() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "bill@initech.example".to_string(),
                "hank@globex.example".to_string(),
                "WILE@acme.example".to_string(),
            ]),
            "[a-z]{1,6}@[a-z]{1,6}\\.example",
        ]
    }

    fn arb_deal() -> impl Strategy<Value = String> {
        prop::sample::select(DEALS.to_vec()).prop_map(String::from)
    }

    fn arb_amount() -> impl Strategy<Value = i64> {
        prop_oneof![0i64..10_000_000, 0i64..100_000_000]
    }

    /// Every kind, with the fields the store has facts about drawn from what it holds.
    /// One strategy per kind, with the fields the store has facts about drawn from what
    /// it holds (its deals and contacts, and strangers).
    fn by_kind() -> Vec<BoxedStrategy<ActionParams>> {
        let email = || {
            (
                prop::collection::vec(arb_address(), 1..3),
                prop::collection::vec(arb_address(), 0..2),
                ".{0,20}",
                prop::option::of(arb_deal()),
            )
                .prop_map(|(to, cc, subject, deal_id)| Email {
                    to,
                    cc,
                    subject,
                    body: "Hi".into(),
                    deal_id,
                })
        };
        vec![
            prop::option::of(arb_stage())
                .prop_map(|stage| ActionParams::ListDeals { stage })
                .boxed(),
            arb_deal()
                .prop_map(|deal_id| ActionParams::GetDeal { deal_id })
                .boxed(),
            ".{0,10}"
                .prop_map(|query| ActionParams::SearchContacts { query })
                .boxed(),
            (0i64..1_000, 1_001i64..10_000)
                .prop_map(|(from, to)| ActionParams::CheckCalendar { from, to })
                .boxed(),
            Just(ActionParams::ListSlackChannels {}).boxed(),
            (0i64..1_000)
                .prop_map(|since| ActionParams::ReadInbox { since })
                .boxed(),
            email().prop_map(ActionParams::SendEmail).boxed(),
            email().prop_map(ActionParams::DraftEmail).boxed(),
            (prop::collection::vec(arb_address(), 1..3), 0i64..1_000)
                .prop_map(|(attendees, start)| ActionParams::ScheduleMeeting {
                    title: "Sync".into(),
                    attendees,
                    start,
                    end: start + 1_800_000,
                    description: String::new(),
                })
                .boxed(),
            prop::sample::select(vec!["#deals", "#general", "#random"])
                .prop_map(|c| ActionParams::PostSlack {
                    channel: c.into(),
                    text: "update".into(),
                })
                .boxed(),
            ("[A-Z][a-z]{1,8}", arb_amount(), arb_stage())
                .prop_map(|(name, amount_cents, stage)| ActionParams::CreateDeal {
                    account: name.clone(),
                    name,
                    amount_cents,
                    stage,
                })
                .boxed(),
            (
                arb_deal(),
                prop::option::of(arb_stage()),
                prop::option::of(arb_amount()),
            )
                .prop_map(|(deal_id, stage, amount_cents)| ActionParams::UpdateDeal {
                    revision: None,
                    deal_id,
                    stage,
                    amount_cents,
                    notes: None,
                })
                .boxed(),
            (arb_deal(), any::<bool>(), arb_amount())
                .prop_map(|(deal_id, won, amount_cents)| ActionParams::CloseDeal {
                    revision: None,
                    deal_id,
                    won,
                    amount_cents,
                })
                .boxed(),
        ]
    }

    /// Any kind.
    fn arb_grounded() -> impl Strategy<Value = ActionParams> {
        prop::strategy::Union::new(by_kind())
    }

    /// An action and an edit of it: mostly of the same kind (what a person edits), now
    /// and then of another (which must be refused).
    pub(super) fn arb_edit() -> impl Strategy<Value = (ActionParams, ActionParams)> {
        let same = prop::strategy::Union::new(by_kind().into_iter().map(|k| (k.clone(), k)));
        prop_oneof![9 => same, 1 => (arb_grounded(), arb_grounded())]
    }

    fn entry() -> NewAuditEntry {
        NewAuditEntry {
            ts: 1,
            actor: "user:auth0|rep".into(),
            surface: Some(Surface::Cli),
            event: "permissions.changed".into(),
            action_id: None,
            outcome: "ok".into(),
            detail: serde_json::json!({}),
        }
    }

    /// A seeded store holding `p` as far as the store accepts it (it refuses some
    /// combinations, such as a lead's rule met at the keyboard); the stored permissions
    /// are what the properties then compare against.
    pub(super) fn store_with(dir: &tempfile::TempDir, p: &Permissions) -> SqliteStore {
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        dealflow::sandbox::demo::seed(&store, 1).unwrap();
        let mut changes: Vec<PermissionChange> = p
            .autonomy
            .iter()
            .map(|(k, l)| PermissionChange::SetAutonomy {
                kind: *k,
                level: *l,
            })
            .collect();
        changes.extend([
            PermissionChange::SetStepUpThreshold {
                cents: p.step_up_amount_cents,
            },
            PermissionChange::SetCloseWon {
                level: p.close_won.level,
                approver: p.close_won.approver.clone(),
            },
            PermissionChange::SetAutoApproveAt {
                at: p.confidence.auto_approve_at,
            },
            PermissionChange::SetForceReviewBelow {
                below: p.confidence.force_review_below,
            },
        ]);
        for c in changes {
            let _ = store.change_permissions(&c, entry());
        }
        store
    }

    pub(super) fn proposed(id: &str, params: ActionParams, surface: Surface, c: f64) -> Action {
        Action {
            id: id.into(),
            original: params.clone(),
            params,
            state: ActionState::Proposed,
            version: 1,
            surface,
            confidence: c,
            justification: "t".into(),
            title: "t".into(),
            created_at: 1,
            updated_at: 1,
            outcome: None,
            evidence: None,
        }
    }

    fn recipients(p: &ActionParams) -> Vec<String> {
        match p {
            ActionParams::SendEmail(e) => e.to.iter().chain(&e.cc).cloned().collect(),
            ActionParams::ScheduleMeeting { attendees, .. } => attendees.clone(),
            _ => vec![],
        }
    }

    fn surface() -> impl Strategy<Value = Surface> {
        prop::sample::select(vec![
            Surface::ActionCenter,
            Surface::Chat,
            Surface::Mcp,
            Surface::Cli,
            Surface::Batch,
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// An edit cannot lower the gate below what the grounded action needs: after
        /// any edit (other deal, amount, stage, recipients), the edited action needs at
        /// least what the same payload needs when proposed fresh, at least step-up when
        /// it touches a deal the store says is over the threshold, at least the close-won
        /// rule, at least review for a counterparty the store does not know, and never
        /// less than the user's own setting.
        #[test]
        fn an_edit_cannot_lower_the_gate_below_the_grounded_action(
            (original, edit) in arb_edit(), p in arb_perms(),
            s in surface(), c in 0.0f64..=1.0,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let store = store_with(&dir, &p);
            let perms = store.load_permissions().unwrap();
            store.insert_action(&proposed("act-x", original.clone(), s, c)).unwrap();
            let me = Reviewer { actor: "user:auth0|rep".into(), surface: Surface::Cli };
            let edited = match me.edit(&store, "act-x", &edit, 2) {
                Ok(a) => a,
                Err(ReviewError::InvalidEdit { .. }) => {
                    // Refused: another kind, a deal that does not exist, or a close
                    // through update_deal. Nothing changed.
                    let kept = store.get_action("act-x").unwrap();
                    prop_assert_eq!(kept.params, original);
                    prop_assert_eq!(kept.version, 1);
                    return Ok(());
                }
                Err(other) => return Err(TestCaseError::fail(format!("{other}"))),
            };
            prop_assert_eq!(edited.kind(), original.kind());
            let d = decision_for(&store, &edited, 3).unwrap();
            let rank = d.gate().rank();

            store.insert_action(&proposed("act-fresh", edited.params.clone(), s, c)).unwrap();
            let fresh = store.get_action("act-fresh").unwrap();
            let f = decision_for(&store, &fresh, 3).unwrap();
            prop_assert!(rank >= f.gate().rank(), "edited {} < fresh {}", d.explain(), f.explain());

            let deal = dealflow::core::permissions::deal_of(&edited.params)
                .and_then(|id| store.get_deal(id).unwrap());
            let touches_amount = matches!(edited.params, ActionParams::CloseDeal { .. })
                || matches!(edited.params, ActionParams::UpdateDeal { amount_cents: Some(_), .. });
            if let Some(deal) = &deal
                && touches_amount
                && deal.amount_cents > perms.step_up_amount_cents
            {
                prop_assert!(rank >= 2, "store's deal {} over threshold: {}", deal.amount_cents, d.explain());
            }
            if let ActionParams::CloseDeal { won: true, amount_cents, .. } = &edited.params {
                prop_assert!(rank >= perms.close_won.level as u8, "{}", d.explain());
                // The stored payload carries the store's amount, not the editor's.
                prop_assert_eq!(Some(*amount_cents), deal.map(|d| d.amount_cents));
            }
            let contacts: Vec<String> = store
                .list_contacts()
                .unwrap()
                .iter()
                .map(|c| address_key(&c.email))
                .collect();
            let stranger = recipients(&edited.params)
                .iter()
                .any(|a| !contacts.contains(&address_key(a)) && !perms.known.contains(&address_key(a)));
            if stranger && matches!(edited.params, ActionParams::SendEmail(_) | ActionParams::ScheduleMeeting { .. }) {
                prop_assert!(rank >= Gate::Review.rank(), "{}", d.explain());
            }
            let set = perms.autonomy_for(edited.kind());
            let opt_in = s == Surface::ActionCenter
                && set == Autonomy::Review
                && perms.confidence.auto_approve_at.is_some_and(|at| c >= at);
            if edited.kind().is_write() && !opt_in {
                prop_assert!(rank >= set as u8, "set {set:?}: {}", d.explain());
            }
        }

        /// A lead's rule is met only by the lead: whoever approves at a keyboard (any
        /// identity, any surface, with or without the step-up confirmation), a close as
        /// won under a lead's device rule is not approved, and the refusal is audited.
        #[test]
        fn a_lead_rule_is_not_met_at_any_keyboard(
            deal in prop::sample::select(DEALS[..6].to_vec()), lead in "auth0\\|[a-z]{1,6}",
            actor in prop_oneof![
                "user:auth0\\|[a-z]{1,6}",
                Just("user:auth0|rep".to_string()),
                "auth0\\|[a-z]{1,6}".prop_map(|l| format!("user:{l}")),
            ],
            claimed_lead in any::<bool>(), confirm in any::<bool>(), s in surface(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut p = Permissions::default();
            p.close_won.level = Autonomy::Ciba;
            p.close_won.approver = dealflow::core::permissions::Approver::TeamLead(lead.clone());
            let store = store_with(&dir, &p);
            let close = ActionParams::CloseDeal { revision: None, deal_id: deal.into(), won: true, amount_cents: 0 };
            store.insert_action(&proposed("act-close", close, s, 0.99)).unwrap();
            // Even a reviewer naming the lead themselves is a keyboard, not the lead's phone.
            let actor = if claimed_lead { format!("user:{lead}") } else { actor };
            let me = Reviewer { actor, surface: s };
            let r = me.approve(&store, "act-close", confirm, 2);
            prop_assert!(matches!(r, Err(ReviewError::NeedsDevice { .. })), "{r:?}");
            let a = store.get_action("act-close").unwrap();
            prop_assert_ne!(a.state, ActionState::Approved);
            prop_assert!(a.evidence.is_none());
            let refused = store
                .audit_page(0, 1_000)
                .unwrap()
                .iter()
                .any(|e| e.event == "action.approve_refused");
            prop_assert!(refused);
        }
    }

    #[test]
    fn the_generators_reach_every_kind_and_both_outcomes() {
        // Guards the properties above against a generator that quietly stops producing
        // what they need: every kind, and edits that land as well as edits refused.
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..2_000 {
            let v = arb_grounded().new_tree(&mut runner).unwrap().current();
            kinds.insert(v.kind());
        }
        let all: std::collections::BTreeSet<_> = dealflow::core::domain::ActionKind::ALL
            .into_iter()
            .collect();
        assert_eq!(kinds, all);
    }
}

// ------------------------------------------------- execution needs consent for this payload

mod execution {
    use super::store_backed::{arb_edit, proposed, store_with};
    use dealflow::connectors::Endpoints;
    use dealflow::core::consent::ConsentError;
    use dealflow::core::domain::{ActionParams, ActionState, Surface};
    use dealflow::core::permissions::Permissions;
    use dealflow::runtime::credentials::Subject;
    use dealflow::runtime::pipeline::{Pipeline, PipelineError};
    use dealflow::runtime::review::{ReviewError, Reviewer};
    use dealflow::sandbox::Sandbox;
    use dealflow::sandbox::wiring::{RemoteWiring, wire_remote};
    use dealflow::store::Store;
    use proptest::prelude::*;
    use std::sync::{Arc, OnceLock};

    /// One sandbox (Auth0 and provider emulators) and the real Token Vault client wired
    /// to it, shared by every case.
    struct World {
        rt: tokio::runtime::Runtime,
        sandbox: Sandbox,
        wiring: RemoteWiring,
    }

    fn world() -> &'static World {
        static WORLD: OnceLock<World> = OnceLock::new();
        WORLD.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let (sandbox, wiring) = rt.block_on(async {
                let sandbox = Sandbox::start(None).await.unwrap();
                let wiring = wire_remote(
                    &sandbox.base_url(),
                    &sandbox.state.auth0.agent_client_secret(),
                    sandbox.state.admin.expose(),
                    std::time::Duration::from_millis(20),
                )
                .await
                .unwrap();
                (sandbox, wiring)
            });
            World {
                rt,
                sandbox,
                wiring,
            }
        })
    }

    fn side_effects(w: &World) -> (usize, usize, usize) {
        let p = &w.sandbox.state.providers;
        (p.sent().len(), p.events().len(), p.slack_posts().len())
    }

    /// Approves `params` the way a person would (confirming a step-up). `None` when the
    /// gate cannot be met at a keyboard (device or deny).
    fn approved(store: &dyn Store, params: ActionParams) -> Option<()> {
        store
            .insert_action(&proposed("act-x", params, Surface::ActionCenter, 0.95))
            .unwrap();
        let me = Reviewer {
            actor: "user:auth0|rep".into(),
            surface: Surface::Cli,
        };
        match me.approve(store, "act-x", true, 2) {
            Ok(a) => {
                assert_eq!(a.state, ActionState::Approved);
                Some(())
            }
            Err(ReviewError::NeedsDevice { .. } | ReviewError::Denied { .. }) => None,
            Err(other) => panic!("{other}"),
        }
    }

    fn pipeline(w: &World, store: Arc<dyn Store>) -> Pipeline {
        Pipeline::new(
            store,
            w.wiring.creds.clone(),
            Endpoints::sandbox(&w.sandbox.base_url()),
            "rep@dealflow.test".into(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Execution needs evidence bound to the payload's digest: an approved action
        /// whose payload is then rewritten in the store (evidence, seal, state and
        /// version left as they were) does not run, touches no provider, goes back to
        /// review and the log says why.
        #[test]
        fn a_payload_rewritten_after_approval_does_not_run(
            (original, tampered) in arb_edit(),
        ) {
            prop_assume!(original != tampered && original.kind() == tampered.kind());
            let w = world();
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn Store> = Arc::new(store_with(&dir, &Permissions::default()));
            if approved(store.as_ref(), original).is_none() {
                return Ok(());
            }
            let deals = store.list_deals().unwrap();
            let c = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
            c.execute(
                "UPDATE actions SET params = ?1 WHERE id = 'act-x'",
                [serde_json::to_string(&tampered).unwrap()],
            )
            .unwrap();
            let before = side_effects(w);
            let p = pipeline(w, store.clone());
            let r = w.rt.block_on(p.execute("act-x", &Subject::User, 3));
            prop_assert!(
                matches!(r, Err(PipelineError::ConsentVoid { source: ConsentError::Unsealed(_), .. })),
                "{:?}", r.map(|e| e.action.state)
            );
            prop_assert_eq!(side_effects(w), before);
            prop_assert_eq!(store.list_deals().unwrap(), deals);
            let a = store.get_action("act-x").unwrap();
            prop_assert_eq!(a.state, ActionState::Proposed);
            prop_assert!(a.evidence.is_none());
            let logged = store
                .audit_page(0, 1_000)
                .unwrap()
                .iter()
                .any(|e| e.event == "action.consent_void");
            prop_assert!(logged);
        }
    }

    /// The control: the same rig runs an approved action that nobody touched, so the
    /// refusals above are the seal's doing and not a rig that cannot execute.
    #[test]
    fn an_untouched_approval_runs_once() {
        let w = world();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(store_with(&dir, &Permissions::default()));
        let post = ActionParams::PostSlack {
            channel: "#deals".into(),
            text: "control".into(),
        };
        approved(store.as_ref(), post).unwrap();
        let before = w.sandbox.state.providers.slack_posts().len();
        let done =
            w.rt.block_on(pipeline(w, store.clone()).execute("act-x", &Subject::User, 3))
                .unwrap();
        assert_eq!(done.action.state, ActionState::Succeeded);
        assert_eq!(w.sandbox.state.providers.slack_posts().len(), before + 1);
    }
}
