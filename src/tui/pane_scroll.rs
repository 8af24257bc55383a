//! How far a detail pane (the Actions tab's detail, the Audit tab's evidence) is
//! scrolled, for the item it was scrolled on: another selection starts at the top. The
//! view measures how far the pane can scroll (it knows the wrap width) and the model
//! clamps with that, so scrolling past the end never piles up.

use std::cell::Cell;

#[derive(Debug, Default, Clone)]
pub struct PaneScroll {
    /// The item scrolled (an action id, an audit seq) and the offset in lines.
    at: (String, u16),
    /// How far the pane could scroll, as the last frame measured it.
    room: Cell<u16>,
}

impl PaneScroll {
    /// The offset for `item` (0 for any other item).
    pub fn offset(&self, item: &str) -> u16 {
        if self.at.0 == item { self.at.1 } else { 0 }
    }

    /// Scrolls by `by` lines (negative: up) on `item`, within the measured room.
    pub fn scroll(&mut self, item: &str, by: i32) {
        let to = (i32::from(self.offset(item)) + by).clamp(0, i32::from(self.room.get()));
        self.at = (item.to_string(), u16::try_from(to).unwrap_or(0));
    }

    /// What the view measured: how many lines the content overflows the pane by.
    pub fn set_room(&self, room: u16) {
        self.room.set(room);
    }

    /// The pane title's hint: "J/K scroll · 3 more ↓", "… · end", or nothing when it fits.
    pub fn hint(&self, item: &str, room: u16, keys: (&str, &str)) -> Option<String> {
        if room == 0 {
            return None;
        }
        let off = self.offset(item).min(room);
        let more = if off < room {
            format!("{} more ↓", room - off)
        } else {
            "end".to_string()
        };
        Some(format!("{}/{} scroll · {more}", keys.0, keys.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrolls_within_the_room_and_resets_on_another_item() {
        let mut s = PaneScroll::default();
        s.set_room(5);
        s.scroll("a", 3);
        s.scroll("a", 3);
        assert_eq!(s.offset("a"), 5, "clamped to the room");
        s.scroll("a", -3);
        assert_eq!(s.offset("a"), 2, "one step back from the end");
        assert_eq!(s.offset("b"), 0);
        s.scroll("b", -3);
        assert_eq!(s.offset("b"), 0);
        assert_eq!(s.hint("b", 5, ("J", "K")).unwrap(), "J/K scroll · 5 more ↓");
        assert_eq!(s.hint("b", 0, ("J", "K")), None);
    }
}
