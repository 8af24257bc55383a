//! Properties of the trust features in core: team-policy tightening, time-boxed
//! auto-approve rules in `gate_at`, the threshold-gaming (split) guard, and calibration.

#![allow(clippy::unwrap_used)]

use dealflow::core::audit::{AuditEntry, GENESIS, NewAuditEntry, seal};
use dealflow::core::calibration::{Calibration, CalibrationConfig, target_pattern};
use dealflow::core::consent::{Consent, Evidence, Gate, gate, gate_at, split_guard};
use dealflow::core::domain::{ActionKind, ActionParams, Email, Stage, Surface};
use dealflow::core::permissions::{
    Approver, AutoApproveRule, Autonomy, PermissionChange, Permissions, counterparties, pinned,
};
use proptest::prelude::*;

fn arb_stage() -> impl Strategy<Value = Stage> {
    prop::sample::select(Stage::ALL.to_vec())
}

fn arb_email() -> impl Strategy<Value = Email> {
    (
        "[a-z]{1,4}@(initech|acme)\\.example",
        ".{1,10}",
        ".{0,30}",
        // Filed under a deal or not: a deal's email is gated on the deal's facts too.
        prop::option::of("deal-[ab]"),
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
    prop_oneof![0i64..20_000_000, 4_990_000i64..5_010_000]
}

fn arb_params() -> impl Strategy<Value = ActionParams> {
    prop_oneof![
        Just(ActionParams::ListSlackChannels {}),
        arb_email().prop_map(ActionParams::SendEmail),
        arb_email().prop_map(ActionParams::DraftEmail),
        ("#(deals|general)", ".{1,20}")
            .prop_map(|(channel, text)| ActionParams::PostSlack { channel, text }),
        ("(Acme|Initech)", arb_amount(), arb_stage()).prop_map(|(name, amount_cents, stage)| {
            ActionParams::CreateDeal {
                account: name.clone(),
                name,
                amount_cents,
                stage,
            }
        }),
        ("deal-[ab]", any::<bool>(), arb_amount()).prop_map(|(deal_id, won, amount_cents)| {
            ActionParams::CloseDeal {
                revision: None,
                deal_id,
                won,
                amount_cents,
            }
        }),
        (
            "deal-[ab]",
            prop::option::of(arb_stage()),
            prop::option::of(arb_amount())
        )
            .prop_map(|(deal_id, stage, amount_cents)| ActionParams::UpdateDeal {
                revision: None,
                deal_id,
                stage,
                amount_cents,
                notes: None,
            }),
        (
            prop::collection::vec("[a-z]{1,4}@(initech|acme)\\.example", 1..3),
            0i64..1_000
        )
            .prop_map(|(attendees, start)| ActionParams::ScheduleMeeting {
                title: "Sync".into(),
                attendees,
                start,
                end: start + 1_800_000,
                description: String::new(),
            }),
    ]
}

fn arb_autonomy() -> impl Strategy<Value = Autonomy> {
    prop::sample::select(Autonomy::ALL.to_vec())
}

fn arb_rule() -> impl Strategy<Value = AutoApproveRule> {
    (
        prop::sample::select(ActionKind::ALL.to_vec()),
        prop::sample::select(vec![
            "@initech.example",
            "@acme.example",
            "#deals",
            "Acme",
            "deal-a",
        ]),
        0.0f64..=1.0,
        0i64..2_000,
        0i64..2_000,
    )
        .prop_map(
            |(kind, target, min_confidence, created_at, life)| AutoApproveRule {
                id: format!("r-{kind}-{target}"),
                kind,
                target: target.into(),
                min_confidence,
                created_at,
                expires_at: created_at + life,
                paused: None,
            },
        )
}

fn arb_perms() -> impl Strategy<Value = Permissions> {
    (
        prop::collection::vec(arb_autonomy(), ActionKind::ALL.len()),
        arb_amount(),
        prop::sample::select(vec![Autonomy::StepUp, Autonomy::Ciba, Autonomy::Deny]),
        prop_oneof![
            Just(Approver::User),
            Just(Approver::TeamLead("lead".into()))
        ],
        prop::option::of(0.0f64..=1.0),
        0.0f64..=1.0,
        any::<bool>(),
        prop::collection::vec(arb_rule(), 0..4),
        prop::collection::btree_set(
            prop::sample::select(vec![
                "@initech.example",
                "bob@acme.example",
                "#deals",
                "acme",
                "deal-a",
            ])
            .prop_map(String::from),
            0..3,
        ),
    )
        .prop_map(
            |(levels, threshold, cw, approver, at, below, mcp, rules, pins)| {
                let mut p = Permissions::default();
                for (k, l) in ActionKind::ALL.into_iter().zip(levels) {
                    // Reads are either allowed or denied, as Permissions::apply enforces.
                    let l = if k.is_read() && l != Autonomy::Deny {
                        Autonomy::Auto
                    } else {
                        l
                    };
                    p.autonomy.insert(k, l);
                }
                p.step_up_amount_cents = threshold;
                p.close_won.level = cw;
                p.close_won.approver = approver;
                p.confidence.auto_approve_at = at;
                p.confidence.force_review_below = below;
                p.mcp_writes_enabled = mcp;
                p.auto_rules = rules;
                p.always_review = pins;
                p
            },
        )
}

fn arb_surface() -> impl Strategy<Value = Surface> {
    prop::sample::select(Surface::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// A team policy is a floor: the effective set never gates anything lower than
    /// either the user's own set or the team's, with or without rules and time.
    #[test]
    fn tightening_never_loosens(
        s in arb_surface(), a in arb_params(), user in arb_perms(), team in arb_perms(),
        c in 0.0f64..=1.0, now in 0i64..4_000,
    ) {
        let eff = user.tighten_with(&team);
        for (d, mine, theirs) in [
            (gate(s, &a, &eff, c), gate(s, &a, &user, c), gate(s, &a, &team, c)),
            (gate_at(s, &a, &eff, c, now), gate_at(s, &a, &user, c, now), gate_at(s, &a, &team, c, now)),
        ] {
            prop_assert!(d.gate().rank() >= mine.gate().rank(), "eff {:?} user {:?}", d.gate(), mine.gate());
            prop_assert!(d.gate().rank() >= theirs.gate().rank(), "eff {:?} team {:?}", d.gate(), theirs.gate());
        }
        // Tightening with yourself changes no gate.
        let same = user.tighten_with(&user);
        if user.confidence.auto_approve_at.is_some() {
            let (x, y) = (gate_at(s, &a, &same, c, now), gate_at(s, &a, &user, c, now));
            prop_assert_eq!(x.gate(), y.gate());
        }
    }

    /// Without rules, gate_at is gate. With rules, the only loosening is review → allow,
    /// never for closing a deal, never over the threshold, only for a suggestion in the
    /// Action Center (not chat, CLI, MCP or batch), never below the
    /// force-review floor, and only while the rule is live.
    #[test]
    fn rules_only_turn_a_review_into_allow(
        s in arb_surface(), a in arb_params(), p in arb_perms(), c in 0.0f64..=1.0, now in 0i64..4_000,
    ) {
        let plain = gate(s, &a, &p, c);
        let mut no_rules = p.clone();
        no_rules.auto_rules.clear();
        prop_assert_eq!(&gate_at(s, &a, &no_rules, c, now), &plain);
        let timed = gate_at(s, &a, &p, c, now);
        if timed.gate() != plain.gate() {
            prop_assert_eq!(timed.gate(), &Gate::Allow);
            let id = timed.auto_rule().unwrap();
            let rule = p.auto_rules.iter().find(|r| r.id == id).unwrap();
            prop_assert!(rule.active_at(now));
            prop_assert_eq!(rule.kind, a.kind());
            prop_assert_eq!(&rule.target, &target_pattern(&a));
            prop_assert!(c >= rule.min_confidence && c >= p.confidence.force_review_below);
            prop_assert!(a.kind() != ActionKind::CloseDeal);
            prop_assert_eq!(s, Surface::ActionCenter);
            prop_assert!(a.amount_cents().is_none_or(|x| x <= p.step_up_amount_cents));
            prop_assert_eq!(p.autonomy_for(a.kind()), Autonomy::Review);
        } else {
            prop_assert!(timed.auto_rule().is_none() || timed.gate() == &Gate::Allow);
        }
    }

    /// Pins only add friction, and a write to a pinned counterparty is never let through
    /// without a look: not by autonomy, confidence or a calibration rule.
    #[test]
    fn pins_only_raise_and_a_pinned_write_is_never_allowed(
        s in arb_surface(), a in arb_params(), p in arb_perms(), c in 0.0f64..=1.0, now in 0i64..4_000,
    ) {
        let mut unpinned = p.clone();
        unpinned.always_review.clear();
        let (with, without) = (gate_at(s, &a, &p, c, now), gate_at(s, &a, &unpinned, c, now));
        prop_assert!(with.gate().rank() >= without.gate().rank(), "{:?} vs {:?}", with.gate(), without.gate());
        let hit = pinned(&p.always_review, &counterparties(&a));
        if hit.is_some() && a.kind().is_write() {
            prop_assert_ne!(with.gate(), &Gate::Allow);
            prop_assert!(with.auto_rule().is_none());
        }
        if hit.is_none() {
            prop_assert_eq!(with.gate(), without.gate());
        }
    }

    /// The split guard adds up same-account amounts inside the window, and nothing else.
    #[test]
    fn split_guard_adds_up_same_account_amounts_in_the_window(
        amount in 1i64..6_000_000,
        history in prop::collection::vec((prop::sample::select(vec!["Acme", "Initech"]), 1i64..4_000_000, 0i64..10_000), 0..6),
        window in 1i64..10_000,
        threshold in 1i64..8_000_000,
    ) {
        let at = 10_000;
        let a = ActionParams::CreateDeal { name: "x".into(), account: "Acme".into(), amount_cents: amount, stage: Stage::Qualified };
        let recent: Vec<(String, i64, i64)> = history.iter().map(|(acc, c, t)| (acc.to_string(), *c, *t)).collect();
        let got = split_guard(&a, "Acme", at, &recent, window, threshold);
        let in_window: Vec<i64> = recent.iter().filter(|(acc, _, t)| acc == "Acme" && *t > at - window && *t <= at).map(|x| x.1).collect();
        let expected = amount <= threshold && !in_window.is_empty() && in_window.iter().sum::<i64>() + amount > threshold;
        prop_assert_eq!(got.is_some(), expected, "{:?}", got);
        // Other accounts' history never matters.
        let others: Vec<_> = recent.iter().filter(|(acc, _, _)| acc != "Acme").cloned().collect();
        prop_assert!(split_guard(&a, "Acme", at, &others, window, threshold).is_none());
    }

    /// Raising only raises: at least step-up afterwards, the reason is in the chain, and
    /// a mere review no longer grants consent.
    #[test]
    fn raising_to_step_up_only_raises(s in arb_surface(), a in arb_params(), p in arb_perms(), c in 0.0f64..=1.0, now in 0i64..4_000) {
        let d = gate_at(s, &a, &p, c, now);
        let before = d.gate().clone();
        let n = d.reasons().len();
        let r = d.raise_to_step_up("split amounts: test");
        prop_assert!(r.gate().rank() >= before.rank().max(2));
        if before.rank() >= 2 {
            prop_assert_eq!(r.gate(), &before);
        }
        prop_assert_eq!(r.reasons().len(), n + 1);
        prop_assert_eq!(r.reasons().last().unwrap(), "split amounts: test");
        prop_assert!(r.auto_rule().is_none() || r.gate() == &Gate::Allow);
        let reviewed = Evidence::Reviewed { actor: "u".into(), at: 0 };
        prop_assert!(Consent::grant(&r, &a, reviewed).is_err());
    }
}

fn email_to(to: &str, body: &str) -> ActionParams {
    ActionParams::SendEmail(Email {
        to: vec![to.into()],
        cc: vec![],
        subject: "Follow-up".into(),
        body: body.into(),
        deal_id: None,
    })
}

/// A little audit log written the way the CLI writes it.
struct Log {
    entries: Vec<AuditEntry>,
}

impl Log {
    fn new() -> Log {
        Log { entries: vec![] }
    }
    fn push(&mut self, event: &str, id: &str, detail: serde_json::Value) {
        let prev = self
            .entries
            .last()
            .map_or(GENESIS.to_string(), |e| e.hash.clone());
        let seq = self.entries.len() as i64 + 1;
        self.entries.push(seal(
            seq,
            &prev,
            NewAuditEntry {
                ts: seq,
                actor: "user:ana".into(),
                surface: Some(Surface::ActionCenter),
                event: event.into(),
                action_id: Some(id.into()),
                outcome: "ok".into(),
                detail,
            },
        ));
    }
    fn decide(&mut self, event: &str, id: &str, kind: &str, target: &str, conf: f64, edit: f64) {
        self.push(
            event,
            id,
            serde_json::json!({"kind": kind, "target": target, "confidence": conf, "edit_size": edit}),
        );
    }
}

#[test]
fn five_unedited_high_confidence_approvals_raise_a_nudge_and_an_edit_resets() {
    let cfg = CalibrationConfig::default();
    let perms = Permissions::default();
    let mut log = Log::new();
    for i in 0..4 {
        log.decide(
            "action.approved",
            &format!("e{i}"),
            "send_email",
            "@initech.example",
            0.95,
            0.0,
        );
    }
    assert!(
        Calibration::replay(cfg.clone(), &log.entries)
            .nudges(&perms, 0)
            .is_empty()
    );
    // A substantial edit resets the streak; a trivial one neither counts nor resets.
    log.decide(
        "action.approved",
        "x1",
        "send_email",
        "@initech.example",
        0.95,
        0.4,
    );
    for i in 4..8 {
        log.decide(
            "action.approved",
            &format!("e{i}"),
            "send_email",
            "@initech.example",
            0.95,
            0.0,
        );
    }
    log.decide(
        "action.approved",
        "t1",
        "send_email",
        "@initech.example",
        0.95,
        0.05,
    );
    assert!(
        Calibration::replay(cfg.clone(), &log.entries)
            .nudges(&perms, 0)
            .is_empty()
    );
    // Low confidence approvals and other targets do not count.
    log.decide(
        "action.approved",
        "lo",
        "send_email",
        "@initech.example",
        0.7,
        0.0,
    );
    log.decide(
        "action.approved",
        "ot",
        "send_email",
        "@acme.example",
        0.95,
        0.0,
    );
    assert!(
        Calibration::replay(cfg.clone(), &log.entries)
            .nudges(&perms, 0)
            .is_empty()
    );
    log.decide(
        "action.approved",
        "e8",
        "send_email",
        "@initech.example",
        0.95,
        0.0,
    );
    let cal = Calibration::replay(cfg.clone(), &log.entries);
    let nudges = cal.nudges(&perms, 0);
    assert_eq!(nudges.len(), 1, "{nudges:?}");
    let n = &nudges[0];
    assert_eq!(
        (n.kind, n.target.as_str()),
        (ActionKind::SendEmail, "@initech.example")
    );
    assert_eq!(n.evidence, ["e4", "e5", "e6", "e7", "e8"]);
    assert!(n.text.contains("@initech.example at ≥ 0.90"), "{}", n.text);
    // Figures per kind and band.
    let f = &cal.figures[&(ActionKind::SendEmail, "≥ 0.90")];
    assert_eq!(
        (
            f.total,
            f.approved_unedited,
            f.approved_trivial_edit,
            f.approved_substantial_edit
        ),
        (12, 10, 1, 1)
    );
    assert!(
        cal.report()
            .contains(&"send_email ≥ 0.90: 10/12 approved unedited".to_string())
    );
    // A rejection resets it again.
    log.decide(
        "action.rejected",
        "r1",
        "send_email",
        "@initech.example",
        0.95,
        0.0,
    );
    assert!(
        Calibration::replay(cfg, &log.entries)
            .nudges(&perms, 0)
            .is_empty()
    );
}

#[test]
fn irreversible_or_over_threshold_patterns_are_never_suggested() {
    let mut log = Log::new();
    for i in 0..10 {
        log.decide(
            "action.approved",
            &format!("c{i}"),
            "close_deal",
            "deal-a",
            0.99,
            0.0,
        );
        log.push(
            "action.approved",
            &format!("d{i}"),
            serde_json::json!({"kind": "create_deal", "target": "Acme", "confidence": 0.99, "edit_size": 0.0, "amount_cents": if i == 3 { 9_000_000 } else { 100 }}),
        );
    }
    let cal = Calibration::replay(CalibrationConfig::default(), &log.entries);
    assert!(cal.nudges(&Permissions::default(), 0).is_empty());
}

#[test]
fn accepting_a_nudge_is_a_permission_change_that_gate_at_honours_until_it_expires() {
    let mut log = Log::new();
    for i in 0..5 {
        log.decide(
            "action.approved",
            &format!("e{i}"),
            "send_email",
            "@initech.example",
            0.92,
            0.0,
        );
    }
    let mut perms = Permissions::default();
    let before = perms.clone();
    let cal = Calibration::replay(CalibrationConfig::default(), &log.entries);
    let nudge = cal.nudges(&perms, 1_000).remove(0);
    assert_eq!(perms, before, "calibration only suggests");
    let change = nudge.accept(1_000, 7 * 24 * 3600 * 1000);
    let PermissionChange::AddAutoRule { rule } = &change else {
        panic!("{change:?}")
    };
    let id = rule.id.clone();
    perms.apply(&change).unwrap();
    let mail = email_to("bill@initech.example", "Thanks!");
    assert_eq!(
        gate_at(Surface::ActionCenter, &mail, &perms, 0.95, 2_000).gate(),
        &Gate::Allow
    );
    assert_eq!(
        gate_at(Surface::ActionCenter, &mail, &perms, 0.95, 2_000).auto_rule(),
        Some(id.as_str())
    );
    // Below the bar, another domain, after expiry, or without a time: reviewed.
    assert_eq!(
        gate_at(Surface::ActionCenter, &mail, &perms, 0.85, 2_000).gate(),
        &Gate::Review
    );
    let other = email_to("x@acme.example", "Thanks!");
    assert_eq!(
        gate_at(Surface::ActionCenter, &other, &perms, 0.95, 2_000).gate(),
        &Gate::Review
    );
    assert_eq!(
        gate_at(
            Surface::ActionCenter,
            &mail,
            &perms,
            0.95,
            1_000 + 8 * 24 * 3600 * 1000
        )
        .gate(),
        &Gate::Review
    );
    assert_eq!(
        gate(Surface::ActionCenter, &mail, &perms, 0.95).gate(),
        &Gate::Review
    );
    // An active rule silences its nudge; hits are counted from the audit log.
    assert!(cal.nudges(&perms, 2_000).is_empty());
    log.push("action.approved", "h1", serde_json::json!({"kind": "send_email", "target": "@initech.example", "confidence": 0.95, "edit_size": 0.0, "auto_rule": id}));
    let cal = Calibration::replay(CalibrationConfig::default(), &log.entries);
    assert_eq!(cal.rule_hits[&id], 1);
    // Revoking is one call.
    perms
        .apply(&PermissionChange::RevokeAutoRule { id: id.clone() })
        .unwrap();
    assert_eq!(
        gate_at(Surface::ActionCenter, &mail, &perms, 0.95, 2_000).gate(),
        &Gate::Review
    );
    assert!(
        perms
            .apply(&PermissionChange::RevokeAutoRule { id })
            .is_err()
    );
}

#[test]
fn rules_for_irreversible_kinds_or_forever_are_refused() {
    let mut p = Permissions::default();
    let rule = |kind, life| AutoApproveRule {
        id: "r".into(),
        kind,
        target: "deal-a".into(),
        min_confidence: 0.9,
        created_at: 0,
        expires_at: life,
        paused: None,
    };
    assert!(
        p.apply(&PermissionChange::AddAutoRule {
            rule: rule(ActionKind::CloseDeal, 1000)
        })
        .is_err()
    );
    assert!(
        p.apply(&PermissionChange::AddAutoRule {
            rule: rule(ActionKind::ListDeals, 1000)
        })
        .is_err()
    );
    assert!(
        p.apply(&PermissionChange::AddAutoRule {
            rule: rule(ActionKind::UpdateDeal, i64::MAX)
        })
        .is_err()
    );
    let mut low = rule(ActionKind::UpdateDeal, 1000);
    low.min_confidence = 0.3;
    assert!(
        p.apply(&PermissionChange::AddAutoRule { rule: low })
            .is_err(),
        "below force_review_below"
    );
    assert!(
        p.apply(&PermissionChange::AddAutoRule {
            rule: rule(ActionKind::UpdateDeal, 1000)
        })
        .is_ok()
    );
    assert_eq!(p.auto_rules.len(), 1);
}

#[test]
fn a_split_deal_steps_up_with_its_reason_in_the_chain() {
    let p = Permissions::default();
    let a = ActionParams::CreateDeal {
        name: "Acme expansion, part 2".into(),
        account: "Acme".into(),
        amount_cents: 3_000_000,
        stage: Stage::Qualified,
    };
    let d = gate(Surface::ActionCenter, &a, &p, 0.95);
    assert_eq!(d.gate(), &Gate::Review);
    let recent = vec![
        ("Acme".to_string(), 3_000_000, 9_000),
        ("Initech".to_string(), 4_000_000, 9_500),
    ];
    let reason = split_guard(
        &a,
        "Acme",
        10_000,
        &recent,
        3_600_000,
        p.step_up_amount_cents,
    )
    .unwrap();
    assert!(reason.contains("$60,000 > threshold $50,000"), "{reason}");
    let d = d.raise_to_step_up(&reason);
    assert!(matches!(d.gate(), Gate::StepUp { .. }));
    assert!(d.explain().ends_with(&reason));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Over any history: a nudge names exactly the unedited high-confidence approvals of
    /// its kind and target since the last substantial edit or rejection, at least 5 of
    /// them, never for closing deals; and figures add up.
    #[test]
    fn nudges_follow_the_streak_rule(
        steps in prop::collection::vec((
            prop::sample::select(vec!["send_email", "close_deal", "post_slack"]),
            prop::sample::select(vec!["@initech.example", "#deals"]),
            prop::sample::select(vec![0.5, 0.85, 0.9, 0.97]),
            prop::sample::select(vec!["approve0", "approve_trivial", "approve_big", "reject"]),
        ), 0..40)
    ) {
        let mut log = Log::new();
        let mut model: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
        for (i, (kind, target, conf, what)) in steps.iter().enumerate() {
            let id = format!("a{i}");
            let (event, edit) = match *what {
                "approve0" => ("action.approved", 0.0),
                "approve_trivial" => ("action.approved", 0.05),
                "approve_big" => ("action.approved", 0.5),
                _ => ("action.rejected", 0.0),
            };
            log.decide(event, &id, kind, target, *conf, edit);
            let streak = model.entry((kind.to_string(), target.to_string())).or_default();
            match *what {
                "approve0" if *conf >= 0.9 => streak.push(id),
                "approve_big" | "reject" => streak.clear(),
                _ => {}
            }
        }
        let cal = Calibration::replay(CalibrationConfig::default(), &log.entries);
        let nudges = cal.nudges(&Permissions::default(), 0);
        let expected: Vec<(String, String, Vec<String>)> = model
            .into_iter()
            .filter(|((k, _), ids)| ids.len() >= 5 && k != "close_deal")
            .map(|((k, t), ids)| (k, t, ids))
            .collect();
        let got: Vec<(String, String, Vec<String>)> = nudges
            .iter()
            .map(|n| (n.kind.as_str().to_string(), n.target.clone(), n.evidence.clone()))
            .collect();
        prop_assert_eq!(got, expected);
        let total: u64 = cal.figures.values().map(|f| f.total).sum();
        prop_assert_eq!(total as usize, steps.len());
        for f in cal.figures.values() {
            prop_assert_eq!(f.total, f.approved_unedited + f.approved_trivial_edit + f.approved_substantial_edit + f.rejected + f.timeouts);
        }
    }
}

#[test]
fn taking_a_send_back_from_the_outbox_resets_the_streak() {
    let cfg = CalibrationConfig::default();
    let perms = Permissions::default();
    let mut log = Log::new();
    let approve = |log: &mut Log, id: &str| {
        log.decide(
            "action.approved",
            id,
            "send_email",
            "@initech.example",
            0.95,
            0.0,
        )
    };
    for i in 0..4 {
        approve(&mut log, &format!("e{i}"));
    }
    log.decide(
        "action.withdrawn",
        "e3",
        "send_email",
        "@initech.example",
        0.95,
        0.0,
    );
    approve(&mut log, "e4");
    assert!(
        Calibration::replay(cfg.clone(), &log.entries)
            .nudges(&perms, 0)
            .is_empty(),
        "four approvals, one taken back, then one: no streak of five"
    );
    for i in 5..9 {
        approve(&mut log, &format!("e{i}"));
    }
    let cal = Calibration::replay(cfg, &log.entries);
    assert_eq!(cal.nudges(&perms, 0).len(), 1);
    // The track record counts each decision once and says what was taken back.
    let f = &cal.figures[&(dealflow::core::domain::ActionKind::SendEmail, "≥ 0.90")];
    assert_eq!((f.total, f.approved_unedited, f.withdrawn), (9, 9, 1));
    assert_eq!(f.summary(), "9/9 approved unedited (1 taken back)");
}

/// Calibration fed a page at a time, and only what was appended since, comes out the same
/// as a replay of the whole log; a changed step-up threshold starts it over.
#[test]
fn incremental_replay_matches_a_full_replay() {
    use dealflow::runtime::trust::{Replay, audit_log, replay};
    use dealflow::store::{SqliteStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let decide = |event: &str, id: &str, target: &str, edit: f64| {
        store
            .append_audit(NewAuditEntry {
                ts: 1,
                actor: "user:ana".into(),
                surface: Some(Surface::ActionCenter),
                event: event.into(),
                action_id: Some(id.into()),
                outcome: "ok".into(),
                detail: serde_json::json!({"kind": "send_email", "target": target, "confidence": 0.95, "edit_size": edit}),
            })
            .unwrap();
    };
    let mut slot = None;
    let perms = store.load_permissions().unwrap();
    for i in 0..3 {
        decide("action.approved", &format!("a{i}"), "@initech.example", 0.0);
    }
    Replay::catch_up(&mut slot, &store, &perms).unwrap();
    for i in 3..6 {
        decide("action.approved", &format!("a{i}"), "@initech.example", 0.0);
    }
    decide("action.approved", "b0", "@acme.example", 0.5);
    decide("action.withdrawn", "a5", "@initech.example", 0.0);
    for i in 6..11 {
        decide("action.approved", &format!("a{i}"), "@initech.example", 0.0);
    }
    Replay::catch_up(&mut slot, &store, &perms).unwrap();
    let r = slot.as_ref().unwrap();
    let (full, _) = replay(&store).unwrap();
    assert_eq!(r.calibration().figures, full.figures);
    assert_eq!(r.calibration().report(), full.report());
    assert_eq!(r.calibration().nudges(&perms, 0), full.nudges(&perms, 0));
    assert_eq!(full.nudges(&perms, 0).len(), 1);
    assert_eq!(r.head(), audit_log(&store).unwrap().last().unwrap().seq);
    // Nothing new: nothing changes.
    Replay::catch_up(&mut slot, &store, &perms).unwrap();
    assert_eq!(slot.as_ref().unwrap().calibration().figures, full.figures);
    // A new threshold starts over from the first entry, to the same figures.
    let mut lower = perms.clone();
    lower.step_up_amount_cents = 1;
    Replay::catch_up(&mut slot, &store, &lower).unwrap();
    assert_eq!(slot.as_ref().unwrap().calibration().figures, full.figures);
}

/// One decision for the snapshot tests: (event, action, target, confidence, edit size).
fn snapshot_decision() -> impl Strategy<Value = (usize, usize, usize, f64, f64)> {
    (
        0usize..5,
        0usize..12,
        0usize..3,
        0.5f64..1.0,
        prop_oneof![Just(0.0), 0.0f64..0.5],
    )
}

fn append_decision(store: &dyn dealflow::store::Store, d: (usize, usize, usize, f64, f64)) {
    let (event, id, target, confidence, edit) = d;
    let target = ["@initech.example", "@acme.example", "#deals"][target];
    let event = [
        "action.proposed",
        "action.approved",
        "action.rejected",
        "action.withdrawn",
        "action.edited",
    ][event];
    store
        .append_audit(NewAuditEntry {
            ts: 1,
            actor: "user:ana".into(),
            surface: Some(Surface::ActionCenter),
            event: event.into(),
            action_id: Some(format!("a{id}")),
            outcome: "ok".into(),
            detail: serde_json::json!({
                "kind": if id % 4 == 0 { "post_slack" } else { "send_email" },
                "target": target,
                "confidence": confidence,
                "edit_size": edit,
            }),
        })
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Start-up from the persisted snapshot plus the tail equals a full replay (issue
    /// 18), wherever the snapshot was taken, and the snapshot moves on as the log grows.
    #[test]
    fn snapshot_plus_tail_equals_a_full_replay(
        before in proptest::collection::vec(snapshot_decision(), 0..60),
        after in proptest::collection::vec(snapshot_decision(), 0..60),
    ) {
        use dealflow::runtime::seal::ConsentKey;
        use dealflow::runtime::trust::{Replay, replay};
        use dealflow::store::{SqliteStore, Store};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        let key = ConsentKey::ephemeral();
        let perms = store.load_permissions().unwrap();
        let covered = before.len() as i64;
        for d in before {
            append_decision(&store, d);
        }
        // The first start replays from the first entry and saves the snapshot.
        Replay::catch_up_cached(&mut None, &store, &perms, Some(&key)).unwrap();
        for d in after {
            append_decision(&store, d);
        }
        // The next start reads the snapshot and the tail.
        let mut slot = None;
        let r = Replay::catch_up_cached(&mut slot, &store, &perms, Some(&key)).unwrap();
        prop_assert_eq!(r.started_after(), covered);
        let (full, _) = replay(&store).unwrap();
        prop_assert_eq!(r.calibration().state(), full.state());
        prop_assert_eq!(r.calibration().nudges(&perms, 0), full.nudges(&perms, 0));
        prop_assert_eq!(r.head(), store.audit_head().unwrap().0);
    }
}

/// The snapshot is a cache, not a fact: one forged in the store (its counts raised so a
/// nudge appears, with a MAC from another key or none), one whose covered entry no longer
/// matches the chain, and one for another threshold are each ignored, and the replay
/// from the first entry decides the nudges.
#[test]
fn a_forged_or_stale_snapshot_does_not_change_calibration_or_nudges() {
    use dealflow::runtime::seal::ConsentKey;
    use dealflow::runtime::trust::{Replay, SNAPSHOT, replay};
    use dealflow::store::{SqliteStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let key = ConsentKey::ephemeral();
    let perms = store.load_permissions().unwrap();
    // Three unedited approvals: short of a streak (five), so no nudge.
    for i in 0..3 {
        append_decision(&store, (1, i + 1, 0, 0.95, 0.0));
    }
    let start = |k: Option<&ConsentKey>, perms: &dealflow::core::permissions::Permissions| {
        let mut slot = None;
        let r = Replay::catch_up_cached(&mut slot, &store, perms, k).unwrap();
        (r.calibration().state(), r.calibration().nudges(perms, 0))
    };
    let (truth, nudges) = start(Some(&key), &perms);
    let from_snapshot = |k: Option<&ConsentKey>| {
        let mut slot = None;
        Replay::catch_up_cached(&mut slot, &store, &perms, k)
            .unwrap()
            .started_after()
    };
    assert_eq!(from_snapshot(Some(&key)), 3);
    assert!(nudges.is_empty());
    let (full, _) = replay(&store).unwrap();
    assert_eq!(truth, full.state());
    let saved = store.load_cache(SNAPSHOT).unwrap().unwrap();
    let (tag, json) = saved.split_once('\n').unwrap();
    // Forged: the streak counts five now, so the forger's snapshot would nudge.
    let forged_json = json
        .replace(
            "[\"a1\",\"a2\",\"a3\"]",
            "[\"a1\",\"a2\",\"a3\",\"x\",\"y\"]",
        )
        .replace("\"run\":3", "\"run\":5");
    assert!(
        forged_json.contains("\"run\":5"),
        "the streak's count is in the snapshot: {json}"
    );
    for body in [
        format!("{tag}\n{forged_json}"),
        format!(
            "{}\n{forged_json}",
            ConsentKey::ephemeral().mac_cache(SNAPSHOT, forged_json.as_bytes())
        ),
        format!("\n{forged_json}"),
        forged_json.clone(),
    ] {
        store.save_cache(SNAPSHOT, &body).unwrap();
        assert_eq!(from_snapshot(Some(&key)), 0);
        let (state, nudges) = start(Some(&key), &perms);
        assert_eq!(state, truth);
        assert!(nudges.is_empty());
    }
    // The same forgery MACed with the right key is trusted (which is why the key never
    // leaves the keyring): the check above is the MAC, not luck.
    let signed = format!(
        "{}\n{forged_json}",
        key.mac_cache(SNAPSHOT, forged_json.as_bytes())
    );
    store.save_cache(SNAPSHOT, &signed).unwrap();
    assert_eq!(start(Some(&key), &perms).1.len(), 1);
    // Stale: genuine, but the chain under it was rewritten (the covered entry's hash).
    store.save_cache(SNAPSHOT, &saved).unwrap();
    let stale = json.replace(&store.audit_head().unwrap().1, &"f".repeat(64));
    assert_ne!(stale, json);
    store
        .save_cache(
            SNAPSHOT,
            &format!("{}\n{stale}", key.mac_cache(SNAPSHOT, stale.as_bytes())),
        )
        .unwrap();
    assert_eq!(start(Some(&key), &perms).0, truth);
    // Without a key nothing is trusted (or saved).
    store.save_cache(SNAPSHOT, &signed).unwrap();
    assert_eq!(start(None, &perms).0, truth);
    assert_eq!(store.load_cache(SNAPSHOT).unwrap().unwrap(), signed);
}
