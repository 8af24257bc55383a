//! An audit chain in a Redis stream, the shape both the user's log and the team's take:
//! each sealed entry is one stream entry with the ID `<seq>-0` and one field, `entry`
//! (its JSON). The stream gives the chain what a sorted set had to be scripted for: an
//! `XADD` with an explicit ID is refused unless the ID is above every ID the stream
//! ever generated, so appending `n+1` is one native compare-and-append, and an entry
//! cannot be replaced in place nor removed and re-added by `XDEL` + `XADD`. This is
//! not tamper-proofing: a client with write access can lower the stream's top with
//! `XSETID` (or rewrite the key whole); the hash chain and the keyring checkpoint are
//! what catch that, as they did with the sorted set.

use crate::core::audit::{AuditEntry, GENESIS};

/// The field an entry's JSON is kept in.
pub(super) const FIELD: &str = "entry";

/// `XADD stream <seq>-0 entry <json>` for a sealed entry. With `must_exist`, past the
/// first entry the stream must already exist (`NOMKSTREAM`: a nil answer): a writer
/// whose cached head outlived the key must not start a new stream mid-chain. (The team's
/// appends read the head under WATCH in the same transaction, so they need not.)
pub(super) fn xadd_cmd(stream: &str, e: &AuditEntry, must_exist: bool) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream);
    if must_exist && e.seq > 1 {
        cmd.arg("NOMKSTREAM");
    }
    cmd.arg(id_of(e.seq))
        .arg(FIELD)
        .arg(serde_json::to_string(e).unwrap_or_default());
    cmd
}

pub(super) fn xadd(pipe: &mut redis::Pipeline, stream: &str, e: &AuditEntry) {
    pipe.add_command(xadd_cmd(stream, e, false)).ignore();
}

pub(super) fn id_of(seq: i64) -> String {
    format!("{seq}-0")
}

/// The exclusive lower bound "after `seq`" (`-`, the first, for 0).
pub(super) fn after(seq: i64) -> String {
    if seq <= 0 {
        "-".into()
    } else {
        format!("({seq}-0")
    }
}

/// Whether Redis refused an `XADD` because its ID is not above the stream's top: the
/// head moved (or the ID was taken once and deleted).
pub(super) fn id_taken(e: &redis::RedisError) -> bool {
    e.to_string().contains("equal or smaller")
}

/// Rows of `XRANGE`/`XREVRANGE`: the ID and the entry's JSON.
pub(super) type Rows = Vec<(String, Vec<(String, String)>)>;

/// The entry JSON of one row (`None`: the row has no `entry` field).
pub(super) fn body(fields: Vec<(String, String)>) -> Option<String> {
    fields
        .into_iter()
        .find_map(|(k, v)| (k == FIELD).then_some(v))
}

/// What the stream says of its head: the top seq ever appended (the top ID ever
/// generated: an entry deleted from the end still counts) and the hash of the newest
/// entry still there (or genesis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Head {
    pub top: i64,
    pub hash: String,
}

/// One `XINFO STREAM` (no stream: an empty chain). Read as a map, which both RESP2's
/// flat array and RESP3's map give.
pub(super) fn head(c: &mut redis::Connection, stream: &str) -> redis::RedisResult<Head> {
    let unreadable = |what: &str| {
        redis::RedisError::from((
            redis::ErrorKind::Parse,
            "audit stream head",
            format!("{stream}: {what}"),
        ))
    };
    let mut info: std::collections::HashMap<String, redis::Value> =
        match redis::cmd("XINFO").arg("STREAM").arg(stream).query(c) {
            Ok(v) => v,
            Err(e) if e.to_string().contains("no such key") => {
                return Ok(Head {
                    top: 0,
                    hash: GENESIS.to_string(),
                });
            }
            Err(e) => return Err(e),
        };
    let top_id: String = info
        .remove("last-generated-id")
        .map(redis::from_redis_value)
        .transpose()?
        .ok_or_else(|| unreadable("no last-generated-id"))?;
    let top = seq_of(&top_id).ok_or_else(|| unreadable(&format!("top ID {top_id:?}")))?;
    let newest: Option<(String, Vec<(String, String)>)> = match info.remove("last-entry") {
        Some(v) => redis::from_redis_value(v)?,
        None => None,
    };
    let hash = match newest {
        None => GENESIS.to_string(),
        Some((id, fields)) => {
            body(fields)
                .and_then(|b| serde_json::from_str::<AuditEntry>(&b).ok())
                .ok_or_else(|| unreadable(&format!("the newest entry {id} cannot be read")))?
                .hash
        }
    };
    Ok(Head { top, hash })
}

/// The seq of an ID `<seq>-0`.
pub(super) fn seq_of(id: &str) -> Option<i64> {
    id.split_once('-').and_then(|(s, _)| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_bounds() {
        assert_eq!(id_of(12), "12-0");
        assert_eq!(seq_of("12-0"), Some(12));
        assert_eq!(seq_of("x"), None);
        assert_eq!(after(0), "-");
        assert_eq!(after(7), "(7-0");
    }
}
