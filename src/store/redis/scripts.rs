//! The Lua scripts that make the Redis store's compound writes atomic: action
//! transitions, edits and inserts, audit appends, kind-filtered audit reads, adoption.

pub(super) const TRANSITION: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'state', 'version')
if not cur[1] then return {'missing'} end
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then return {'conflict', cur[1], cur[2]} end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'version', tostring(tonumber(cur[2]) + 1), 'updated_at', ARGV[4])
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'outcome', ARGV[6]) end
if ARGV[7] == 'set' then redis.call('HSET', KEYS[1], 'evidence', ARGV[8])
elseif ARGV[7] == 'clear' then redis.call('HDEL', KEYS[1], 'evidence') end
return {'ok'}
"#;

pub(super) const EDIT: &str = r#"
local cur = redis.call('HMGET', KEYS[1], 'state', 'version')
if not cur[1] then return {'missing'} end
local s = cur[1]
if cur[2] ~= ARGV[1] or (s ~= 'proposed' and s ~= 'awaiting_consent' and s ~= 'approved') then
  return {'conflict', cur[1], cur[2]}
end
redis.call('HSET', KEYS[1], 'params', ARGV[2], 'state', 'proposed', 'version', tostring(tonumber(cur[2]) + 1), 'updated_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'evidence')
return {'ok'}
"#;

pub(super) const INSERT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'version', ARGV[2], 'updated_at', ARGV[3], 'params', ARGV[4], 'body', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'outcome', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'evidence', ARGV[7]) end
redis.call('SADD', KEYS[2], ARGV[8])
return 1
"#;

/// KEYS: audit, audit:head, permissions. ARGV: expected count, expected head hash, new
/// seq, entry JSON, new hash, the genesis hash, perms mode ('1' = also compare-and-set
/// the permissions), expected permissions body ('' = absent), new permissions body.
/// Answers {'ok'}, {'head', count, hash} (the head moved: here is the current one, so
/// the caller can reseal without another round trip) or {'perms'}.
pub(super) const APPEND: &str = r#"
local head = redis.call('HMGET', KEYS[2], 'count', 'hash')
local count = head[1] or '0'
local hash = head[2] or ARGV[6]
if count ~= ARGV[1] or hash ~= ARGV[2] then return {'head', count, hash} end
if ARGV[7] == '1' then
  local body = redis.call('GET', KEYS[3]) or ''
  if body ~= ARGV[8] then return {'perms'} end
  redis.call('SET', KEYS[3], ARGV[9])
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[2], 'count', ARGV[3], 'hash', ARGV[5])
return {'ok'}
"#;

/// KEYS: audit. ARGV: the far bound, the near bound (ZRANGE BYSCORE syntax: `(12`,
/// `+inf`), '1' newest first, the limit, how many entries to read at most, then the
/// kinds. Walks the sorted set from the near bound a page at a time, keeping entries
/// whose `detail.kind` is one of the kinds, and stops at the limit or after reading the
/// budget (a long walk does not hold the server). Answers {'end' | 'more', the seq it
/// read up to, the entries...}.
pub(super) const AUDIT_KINDS: &str = r#"
local want = {}
for i = 6, #ARGV do want[ARGV[i]] = true end
local far, near, rev = ARGV[1], ARGV[2], ARGV[3] == '1'
local limit, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {'more', ''}
local read = 0
while read < budget do
  local rows
  if rev then
    rows = redis.call('ZRANGE', KEYS[1], near, far, 'BYSCORE', 'REV', 'LIMIT', 0, 256, 'WITHSCORES')
  else
    rows = redis.call('ZRANGE', KEYS[1], near, far, 'BYSCORE', 'LIMIT', 0, 256, 'WITHSCORES')
  end
  if #rows == 0 then out[1] = 'end'; return out end
  for i = 1, #rows, 2 do
    read = read + 1
    near = '(' .. rows[i + 1]
    out[2] = rows[i + 1]
    local ok, e = pcall(cjson.decode, rows[i])
    if ok and type(e) == 'table' and type(e.detail) == 'table' and want[e.detail.kind] then
      out[#out + 1] = rows[i]
      if #out - 2 >= limit then return out end
    end
  end
  if #rows < 512 then out[1] = 'end'; return out end
end
return out
"#;

/// KEYS: the target's migration marker, then n legacy keys, then their n new names.
/// ARGV: the marker's value. Moves every legacy key unless one of the new names is
/// taken (then nothing moves: two histories are never spliced); either way it marks the
/// target, so a namespace is adopted at most once. Answers 'done' (marked before),
/// 'occupied' or 'moved'.
pub(super) const ADOPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 'done' end
local n = (#KEYS - 1) / 2
local answer = 'moved'
for i = 1, n do
  if redis.call('EXISTS', KEYS[1 + n + i]) == 1 then answer = 'occupied' end
end
if answer == 'moved' then
  for i = 1, n do
    if redis.call('EXISTS', KEYS[1 + i]) == 1 then redis.call('RENAME', KEYS[1 + i], KEYS[1 + n + i]) end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return answer
"#;
