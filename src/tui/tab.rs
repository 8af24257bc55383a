//! The four tabs, in the order the tab bar and the number keys give them.

use crate::tui::keymap::Section;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Actions,
    Chat,
    Permissions,
    Audit,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Actions, Tab::Chat, Tab::Permissions, Tab::Audit];
    pub fn title(self) -> &'static str {
        match self {
            Tab::Actions => "Actions",
            Tab::Chat => "Chat",
            Tab::Permissions => "Permissions",
            Tab::Audit => "Audit",
        }
    }
    pub fn section(self) -> Section {
        match self {
            Tab::Actions => Section::Actions,
            Tab::Chat => Section::Chat,
            Tab::Permissions => Section::Permissions,
            Tab::Audit => Section::Audit,
        }
    }
}
