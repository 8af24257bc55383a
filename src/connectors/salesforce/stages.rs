//! Salesforce stage names and the dealflow stage each means.

use crate::core::domain::Stage;

/// Salesforce stage names and the dealflow stage each means.
#[derive(Debug, Clone, PartialEq)]
pub struct StageMap {
    pairs: Vec<(String, Stage)>,
}

impl StageMap {
    /// The standard sales process's picklist.
    pub fn standard() -> StageMap {
        let p = |sf: &str, s| (sf.to_string(), s);
        StageMap {
            pairs: vec![
                p("Prospecting", Stage::Prospecting),
                p("Qualification", Stage::Qualified),
                p("Needs Analysis", Stage::Qualified),
                p("Value Proposition", Stage::Qualified),
                p("Id. Decision Makers", Stage::Proposal),
                p("Perception Analysis", Stage::Proposal),
                p("Proposal/Price Quote", Stage::Proposal),
                p("Negotiation/Review", Stage::Negotiation),
                p("Closed Won", Stage::ClosedWon),
                p("Closed Lost", Stage::ClosedLost),
            ],
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
            .unwrap_or(match stage {
                Stage::Prospecting => "Prospecting",
                Stage::Qualified => "Qualification",
                Stage::Proposal => "Proposal/Price Quote",
                Stage::Negotiation => "Negotiation/Review",
                Stage::ClosedWon => "Closed Won",
                Stage::ClosedLost => "Closed Lost",
            })
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
