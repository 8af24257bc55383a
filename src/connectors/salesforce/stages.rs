//! Salesforce stage names and the dealflow stage each means.

use crate::core::domain::Stage;

/// The standard sales process's picklist, in its order, and the dealflow stage each
/// name means (the first name for a stage is the one written). The sandbox's emulated
/// org restricts its picklist to these names too.
pub const STANDARD: [(&str, Stage); 10] = [
    ("Prospecting", Stage::Prospecting),
    ("Qualification", Stage::Qualified),
    ("Needs Analysis", Stage::Qualified),
    ("Value Proposition", Stage::Qualified),
    ("Id. Decision Makers", Stage::Proposal),
    ("Perception Analysis", Stage::Proposal),
    ("Proposal/Price Quote", Stage::Proposal),
    ("Negotiation/Review", Stage::Negotiation),
    ("Closed Won", Stage::ClosedWon),
    ("Closed Lost", Stage::ClosedLost),
];

/// Salesforce stage names and the dealflow stage each means.
#[derive(Debug, Clone, PartialEq)]
pub struct StageMap {
    pairs: Vec<(String, Stage)>,
}

impl StageMap {
    /// The standard sales process's picklist.
    pub fn standard() -> StageMap {
        StageMap {
            pairs: STANDARD.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
        }
    }

    /// The standard map with `overrides` (Salesforce name → dealflow stage) put first,
    /// so an override also decides which name a dealflow stage is written as.
    pub fn with_overrides(overrides: &[(String, Stage)]) -> StageMap {
        let mut pairs: Vec<(String, Stage)> = overrides.to_vec();
        for (sf, s) in StageMap::standard().pairs {
            if !pairs.iter().any(|(o, _)| o.eq_ignore_ascii_case(&sf)) {
                pairs.push((sf, s));
            }
        }
        StageMap { pairs }
    }

    pub fn to_dealflow(&self, sf: &str) -> Option<Stage> {
        self.pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(sf.trim()))
            .map(|(_, s)| *s)
    }

    /// The first Salesforce name that means `stage`.
    pub fn to_salesforce(&self, stage: Stage) -> &str {
        self.pairs
            .iter()
            .find(|(_, s)| *s == stage)
            .map(|(n, _)| n.as_str())
            // Every map holds the standard names, so this is only for the type's sake.
            .or_else(|| STANDARD.iter().find(|(_, s)| *s == stage).map(|(n, _)| *n))
            .unwrap_or(STANDARD[0].0)
    }

    /// Every Salesforce name that means `stage`.
    pub fn names_of(&self, stage: Stage) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(_, s)| *s == stage)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}
