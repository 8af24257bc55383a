//! The bytes an audit entry's hash covers: its canonical JSON, written by hand straight
//! into the hasher, byte for byte what serde_json writes.

use super::NewAuditEntry;
use crate::core::domain::{Millis, Surface};
use sha2::{Digest, Sha256};

/// An entry's `detail` as the hasher sees it: a parsed value, or the JSON text a store
/// kept (which is the value's canonical text, so verifying a stored log needs no parse).
#[derive(Clone, Copy)]
pub(super) enum Detail<'a> {
    Value(&'a serde_json::Value),
    Json(&'a str),
}

/// The hashed view of an entry: everything but its own hash.
pub(super) struct Canonical<'a> {
    pub(super) seq: i64,
    pub(super) ts: Millis,
    pub(super) actor: &'a str,
    pub(super) surface: Option<Surface>,
    pub(super) event: &'a str,
    pub(super) action_id: Option<&'a str>,
    pub(super) outcome: &'a str,
    pub(super) detail: Detail<'a>,
}

/// Where canonical bytes go: a buffer, or straight into the hasher (verification builds
/// no buffer at all).
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Numbers are written by their `Display`, which is serde_json's own formatting.
struct Text<'a, S>(&'a mut S);

impl<S: Sink> std::fmt::Write for Text<'_, S> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put(s.as_bytes());
        Ok(())
    }
}

/// The canonical form is serde_json's compact output (objects key-sorted, as
/// `serde_json::Value` keeps them without `preserve_order`), byte for byte: chains sealed
/// by earlier versions, which serialised with serde_json, verify unchanged. Written by
/// hand because verification is mostly this, and serde's machinery cost more than the
/// hashing; a property test holds the two equal.
fn json_str<S: Sink>(out: &mut S, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.put(b"\"");
    let bytes = s.as_bytes();
    // Almost every string needs no escape: one branch-free (vectorised) scan says so.
    let needs_escape = bytes.iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        out.put(bytes);
        out.put(b"\"");
        return;
    }
    let mut clean_from = 0;
    let mut unicode = *b"\\u0000";
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                unicode[4] = HEX[(b >> 4) as usize];
                unicode[5] = HEX[(b & 0xf) as usize];
                &unicode
            }
            _ => continue,
        };
        out.put(&bytes[clean_from..i]);
        out.put(short);
        clean_from = i + 1;
    }
    out.put(&bytes[clean_from..]);
    out.put(b"\"");
}

fn json_int<S: Sink>(out: &mut S, n: impl itoa::Integer) {
    out.put(itoa::Buffer::new().format(n).as_bytes());
}

fn json_number<S: Sink>(out: &mut S, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        json_int(out, i);
    } else if let Some(u) = n.as_u64() {
        json_int(out, u);
    } else {
        // A float: its `Display` is serde_json's own formatting. Writing into a sink
        // cannot fail.
        let _ = std::fmt::Write::write_fmt(&mut Text(out), format_args!("{n}"));
    }
}

fn json_value<S: Sink>(out: &mut S, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Null => out.put(b"null"),
        Value::Bool(true) => out.put(b"true"),
        Value::Bool(false) => out.put(b"false"),
        Value::Number(n) => json_number(out, n),
        Value::String(s) => json_str(out, s),
        Value::Array(items) => {
            out.put(b"[");
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                json_value(out, x);
            }
            out.put(b"]");
        }
        Value::Object(m) => {
            out.put(b"{");
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                json_str(out, k);
                out.put(b":");
                json_value(out, x);
            }
            out.put(b"}");
        }
    }
}

fn json_opt_str<S: Sink>(out: &mut S, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.put(b"null"),
    }
}

/// `prev_hash`, a newline, then the canonical JSON of the entry.
fn write_canonical<S: Sink>(out: &mut S, prev_hash: &str, c: &Canonical<'_>) {
    out.put(prev_hash.as_bytes());
    out.put(b"\n{\"seq\":");
    json_int(out, c.seq);
    out.put(b",\"ts\":");
    json_int(out, c.ts);
    out.put(b",\"actor\":");
    json_str(out, c.actor);
    out.put(b",\"surface\":");
    json_opt_str(out, c.surface.map(Surface::as_str));
    out.put(b",\"event\":");
    json_str(out, c.event);
    out.put(b",\"action_id\":");
    json_opt_str(out, c.action_id);
    out.put(b",\"outcome\":");
    json_str(out, c.outcome);
    out.put(b",\"detail\":");
    match c.detail {
        Detail::Value(v) => json_value(out, v),
        Detail::Json(text) => out.put(text.as_bytes()),
    }
    out.put(b"}");
}

fn canonical_of(seq: i64, e: &NewAuditEntry) -> Canonical<'_> {
    Canonical {
        seq,
        ts: e.ts,
        actor: &e.actor,
        surface: e.surface,
        event: &e.event,
        action_id: e.action_id.as_deref(),
        outcome: &e.outcome,
        detail: Detail::Value(&e.detail),
    }
}

/// Canonical bytes of the entry as it will be hashed.
pub fn canonical_bytes(seq: i64, prev_hash: &str, e: &NewAuditEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical(&mut out, prev_hash, &canonical_of(seq, e));
    out
}

pub fn entry_hash(seq: i64, prev_hash: &str, e: &NewAuditEntry) -> String {
    let mut h = Sha256::new();
    write_canonical(&mut h, prev_hash, &canonical_of(seq, e));
    hex::encode(h.finalize())
}

/// A digest in lowercase hex, as entries carry it (`hex::encode_to_slice` goes through
/// a per-character iterator and cost a tenth of verification).
fn lower_hex(digest: &[u8]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[(b >> 4) as usize];
        pair[1] = HEX[(b & 0xf) as usize];
    }
    out
}

pub(super) fn hash_matches(prev_hash: &str, hash: &str, c: &Canonical<'_>) -> bool {
    let mut h = Sha256::new();
    write_canonical(&mut h, prev_hash, c);
    lower_hex(&h.finalize()) == hash.as_bytes()
}
