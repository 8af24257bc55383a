//! An audit chain in a Redis stream, the shape both the user's log and the team's take:
//! each sealed entry is one stream entry with the ID `<seq>-0` and one field, `entry`
//! (its JSON). The stream gives the chain what a sorted set had to be scripted for: an
//! `XADD` with an explicit ID is refused unless the ID is above every ID the stream
//! ever generated, so appending `n+1` is one native compare-and-append, and an entry
//! can neither be replaced in place nor removed and re-added (the stream remembers the
//! highest ID and how many entries were ever added, which no client can lower short of
//! deleting the whole key).

use crate::core::audit::{AuditEntry, GENESIS};

/// The field an entry's JSON is kept in.
pub(super) const FIELD: &str = "entry";

/// `XADD stream <seq>-0 entry <json>` for a sealed entry.
pub(super) fn xadd_cmd(stream: &str, e: &AuditEntry) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(stream)
        .arg(id_of(e.seq))
        .arg(FIELD)
        .arg(serde_json::to_string(e).unwrap_or_default());
    cmd
}

pub(super) fn xadd(pipe: &mut redis::Pipeline, stream: &str, e: &AuditEntry) {
    pipe.add_command(xadd_cmd(stream, e)).ignore();
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

/// What the stream says of its head: the seq the next entry takes minus one (the top ID
/// ever generated: an entry deleted from the end still counts) and the hash of the
/// newest entry still there (or genesis), plus how many entries were ever added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Head {
    pub top: i64,
    pub hash: String,
    pub added: i64,
}

/// One `XINFO STREAM` (no stream: an empty chain).
pub(super) fn head(c: &mut redis::Connection, stream: &str) -> redis::RedisResult<Head> {
    let empty = Head {
        top: 0,
        hash: GENESIS.to_string(),
        added: 0,
    };
    let info: Vec<redis::Value> = match redis::cmd("XINFO").arg("STREAM").arg(stream).query(c) {
        Ok(v) => v,
        Err(e) if e.to_string().contains("no such key") => return Ok(empty),
        Err(e) => return Err(e),
    };
    let mut head = empty;
    let mut it = info.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        match redis::from_redis_value::<String>(k).ok().as_deref() {
            Some("last-generated-id") => {
                let id: String = redis::from_redis_value(v)?;
                head.top = seq_of(&id).unwrap_or(0);
            }
            Some("entries-added") => head.added = redis::from_redis_value(v)?,
            Some("last-entry") => {
                let row: Option<(String, Vec<(String, String)>)> = redis::from_redis_value(v)?;
                if let Some((_, fields)) = row {
                    let e = body(fields)
                        .and_then(|b| serde_json::from_str::<AuditEntry>(&b).ok())
                        .ok_or_else(|| {
                            redis::RedisError::from((
                                redis::ErrorKind::Parse,
                                "audit: the newest entry cannot be read",
                            ))
                        })?;
                    head.hash = e.hash;
                }
            }
            _ => {}
        }
    }
    Ok(head)
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
