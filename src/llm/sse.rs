//! Server-sent events, parsed by hand (the format is four rules), and the assembler that
//! folds Messages API stream events into [`LlmEvent`]s.

use super::types::{AssistantTurn, ContentBlock, LlmEvent, StopReason, Usage};
use serde_json::Value;

/// One SSE frame: `event:` name (empty when absent) and the joined `data:` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    pub event: String,
    pub data: String,
}

/// Incremental SSE parser: feed it bytes as they arrive, in any split.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseFrame> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if !self.data.is_empty() || !self.event.is_empty() {
                    out.push(SseFrame {
                        event: std::mem::take(&mut self.event),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match field {
                "event" => self.event = value.to_string(),
                "data" => self.data.push(value.to_string()),
                _ => {}
            }
        }
        out
    }
}

/// An `error` event inside a 200 stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub error_type: String,
    pub message: String,
}

enum Partial {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
    },
    Other(Value),
}

/// Folds stream events into consumer events and the final assistant turn.
#[derive(Default)]
pub struct Assembler {
    message_id: String,
    model: String,
    blocks: Vec<(usize, Partial)>,
    done: Vec<(usize, ContentBlock)>,
    stop_reason: Option<String>,
    usage: Usage,
    pub request_id: Option<String>,
    finished: bool,
}

impl Assembler {
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Handles one frame. Unknown events and pings yield nothing.
    pub fn handle(&mut self, frame: &SseFrame) -> Result<Vec<LlmEvent>, StreamError> {
        let v: Value = match serde_json::from_str(&frame.data) {
            Ok(v) => v,
            Err(_) if frame.event == "ping" || frame.data.is_empty() => return Ok(vec![]),
            Err(e) => {
                return Err(StreamError {
                    error_type: "decode_error".into(),
                    message: format!("bad JSON in {:?} event: {e}", frame.event),
                });
            }
        };
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(frame.event.as_str())
            .to_string();
        let idx = v.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        let mut out = Vec::new();
        match ty.as_str() {
            "message_start" => {
                let m = v.get("message").cloned().unwrap_or(Value::Null);
                self.message_id = str_of(&m, "id");
                self.model = str_of(&m, "model");
                if let Some(u) = m.get("usage") {
                    self.usage = serde_json::from_value(u.clone()).unwrap_or_default();
                }
                out.push(LlmEvent::Started {
                    message_id: self.message_id.clone(),
                    model: self.model.clone(),
                });
            }
            "content_block_start" => {
                let b = v.get("content_block").cloned().unwrap_or(Value::Null);
                let partial = match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = str_of(&b, "text");
                        if !t.is_empty() {
                            out.push(LlmEvent::TextDelta(t.clone()));
                        }
                        Partial::Text(t)
                    }
                    Some("tool_use") => Partial::Tool {
                        id: str_of(&b, "id"),
                        name: str_of(&b, "name"),
                        json: String::new(),
                    },
                    _ => Partial::Other(b),
                };
                self.blocks.push((idx, partial));
            }
            "content_block_delta" => {
                let d = v.get("delta").cloned().unwrap_or(Value::Null);
                let dty = d.get("type").and_then(Value::as_str).unwrap_or("");
                if let Some((_, p)) = self.blocks.iter_mut().rev().find(|(i, _)| *i == idx) {
                    match (p, dty) {
                        (Partial::Text(t), "text_delta") => {
                            let s = str_of(&d, "text");
                            t.push_str(&s);
                            out.push(LlmEvent::TextDelta(s));
                        }
                        (Partial::Tool { json, .. }, "input_json_delta") => {
                            json.push_str(&str_of(&d, "partial_json"));
                        }
                        _ => {}
                    }
                }
            }
            "content_block_stop" => {
                if let Some(pos) = self.blocks.iter().position(|(i, _)| *i == idx) {
                    let (i, p) = self.blocks.remove(pos);
                    let block = match p {
                        Partial::Text(text) => ContentBlock::Text { text },
                        Partial::Tool { id, name, json } => {
                            let input = if json.trim().is_empty() {
                                Value::Object(Default::default())
                            } else {
                                serde_json::from_str(&json).map_err(|e| StreamError {
                                    error_type: "decode_error".into(),
                                    message: format!("tool_use {name} input is not JSON: {e}"),
                                })?
                            };
                            out.push(LlmEvent::ToolUse {
                                id: id.clone(),
                                name: name.clone(),
                                input: input.clone(),
                            });
                            ContentBlock::ToolUse { id, name, input }
                        }
                        Partial::Other(v) => ContentBlock::Other(v),
                    };
                    self.done.push((i, block));
                }
            }
            "message_delta" => {
                if let Some(r) = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(r.to_string());
                }
                if let Some(u) = v.get("usage") {
                    if let Some(o) = u.get("output_tokens").and_then(Value::as_u64) {
                        self.usage.output_tokens = o;
                    }
                    if let Some(i) = u.get("input_tokens").and_then(Value::as_u64) {
                        self.usage.input_tokens = i;
                    }
                    if let Some(c) = u.get("cache_creation_input_tokens").and_then(Value::as_u64) {
                        self.usage.cache_creation_input_tokens = c;
                    }
                    if let Some(c) = u.get("cache_read_input_tokens").and_then(Value::as_u64) {
                        self.usage.cache_read_input_tokens = c;
                    }
                }
            }
            "message_stop" => {
                self.finished = true;
                let mut done = std::mem::take(&mut self.done);
                done.sort_by_key(|(i, _)| *i);
                out.push(LlmEvent::Done(AssistantTurn {
                    message_id: self.message_id.clone(),
                    content: done.into_iter().map(|(_, b)| b).collect(),
                    stop_reason: StopReason::parse(
                        self.stop_reason.as_deref().unwrap_or("end_turn"),
                    ),
                    usage: self.usage,
                    request_id: self.request_id.clone(),
                }));
            }
            "error" => {
                let e = v.get("error").cloned().unwrap_or(Value::Null);
                return Err(StreamError {
                    error_type: str_of(&e, "type"),
                    message: str_of(&e, "message"),
                });
            }
            _ => {} // ping and anything new
        }
        Ok(out)
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_split() {
        let text = "event: ping\ndata: {\"type\":\"ping\"}\n\n: comment\nevent: x\r\ndata: a\ndata: b\r\n\r\n";
        for cut in 0..text.len() {
            let mut p = SseParser::default();
            let mut got = p.push(&text.as_bytes()[..cut]);
            got.extend(p.push(&text.as_bytes()[cut..]));
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[1].data, "a\nb");
            assert_eq!(got[1].event, "x");
        }
    }
}
