//! The rubber-stamp guard: a person approving one item after another faster than anyone
//! reads them gets stopped once, at the next irreversible one, by the full confirmation
//! (what will happen, exactly, behind the one-second input guard). Approval fatigue is
//! how a wrong email goes out; nothing is refused, the pace is only broken.

use crate::core::domain::Millis;
use std::collections::VecDeque;

/// Approvals within [`WINDOW_MS`] that count as rubber-stamping.
pub const LIMIT: usize = 5;
pub const WINDOW_MS: Millis = 30_000;

#[derive(Debug, Clone, Default)]
pub struct Pace {
    recent: VecDeque<Millis>,
}

impl Pace {
    /// One approval made through the Action Center.
    pub fn record(&mut self, now: Millis) {
        self.recent.push_back(now);
        self.forget_before(now);
    }

    /// How many approvals in the window, if that is rubber-stamp pace.
    pub fn too_fast(&mut self, now: Millis) -> Option<usize> {
        self.forget_before(now);
        (self.recent.len() >= LIMIT).then_some(self.recent.len())
    }

    /// After the person was made to look once, the count starts over.
    pub fn reset(&mut self) {
        self.recent.clear();
    }

    fn forget_before(&mut self, now: Millis) {
        while self.recent.front().is_some_and(|t| now - t >= WINDOW_MS) {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_in_thirty_seconds_is_too_fast_and_time_or_a_look_resets_it() {
        let mut p = Pace::default();
        for t in 0..4 {
            p.record(t * 1_000);
        }
        assert_eq!(p.too_fast(4_000), None);
        p.record(4_000);
        assert_eq!(p.too_fast(4_500), Some(5));
        assert_eq!(p.too_fast(30_001), None, "the first ones aged out");
        p.record(30_500);
        p.reset();
        assert_eq!(p.too_fast(30_600), None);
    }
}
