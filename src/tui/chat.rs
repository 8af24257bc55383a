//! Chat tab state: the conversation, the input line, folded tool calls, and the step-up
//! prompt and CIBA countdown the agent asks for. The agent itself (a pure FSM, built
//! by the chat developer) drives this through `Msg::Chat`; the tab only renders and
//! sends `ChatEffect::StartChatTurn` / `CancelTurn` / `AnswerStepUp`.

use super::msg::ChatEvent;
use crate::core::domain::Millis;

#[derive(Debug, Clone, PartialEq)]
pub enum ChatLine {
    User(String),
    Assistant(String),
    Tool {
        name: String,
        summary: String,
        detail: String,
    },
    System(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepUpPrompt {
    pub action_id: String,
    /// The whole payload being confirmed, newlines and all.
    pub summary: String,
    pub opened_at: Millis,
    /// Rows of the payload scrolled past; `y` waits until its last row has been shown.
    pub scroll: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CibaWait {
    pub binding_message: String,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, Default)]
pub struct ChatTab {
    pub lines: Vec<ChatLine>,
    pub input: String,
    pub composing: bool,
    pub unfolded: bool,
    pub running: bool,
    pub step_up: Option<StepUpPrompt>,
    pub ciba: Option<CibaWait>,
    /// Rows scrolled back from the newest (0: the newest reply stays in view).
    pub scroll_back: usize,
}

impl ChatTab {
    /// The transcript keeps what a step-up decided: a refusal is as much a part of the
    /// conversation as a yes.
    pub fn record_step_up(&mut self, p: &StepUpPrompt, confirmed: bool) {
        let first = p.summary.lines().next().unwrap_or_default();
        let verb = if confirmed { "confirmed" } else { "declined" };
        self.lines.push(ChatLine::System(format!(
            "{verb} ({}): {first}",
            p.action_id
        )));
    }

    pub fn apply(&mut self, ev: ChatEvent, now: Millis) {
        match ev {
            ChatEvent::AssistantDelta(t) => match self.lines.last_mut() {
                Some(ChatLine::Assistant(s)) => s.push_str(&t),
                _ => self.lines.push(ChatLine::Assistant(t)),
            },
            ChatEvent::ToolCall {
                name,
                summary,
                detail,
            } => self.lines.push(ChatLine::Tool {
                name,
                summary,
                detail,
            }),
            ChatEvent::StepUp { action_id, summary } => {
                self.step_up = Some(StepUpPrompt {
                    action_id,
                    summary,
                    opened_at: now,
                    scroll: 0,
                })
            }
            ChatEvent::CibaWaiting {
                binding_message,
                expires_at,
            } => {
                self.ciba = Some(CibaWait {
                    binding_message,
                    expires_at,
                })
            }
            ChatEvent::CibaDone(line) => {
                self.ciba = None;
                self.lines.push(ChatLine::System(line));
            }
            ChatEvent::TurnDone(err) => {
                self.running = false;
                // A turn that ended waits on nothing: no panel may keep counting, and
                // no prompt may take a yes for a call that is gone.
                self.ciba = None;
                self.step_up = None;
                if let Some(e) = err {
                    self.lines.push(ChatLine::System(e));
                }
            }
        }
    }
}
