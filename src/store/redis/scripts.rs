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

/// KEYS: audit:log, permissions. ARGV: the new entry's stream ID, its JSON, the
/// expected permissions body ('' = absent), the new body. Appends the entry and swaps
/// the body together, or neither. Answers 'ok', 'head' (the ID is taken: someone
/// appended first) or 'perms' (the permissions moved).
pub(super) const APPEND: &str = r#"
local body = redis.call('GET', KEYS[2]) or ''
if body ~= ARGV[3] then return 'perms' end
local added
if ARGV[1] == '1-0' then
  added = redis.pcall('XADD', KEYS[1], ARGV[1], 'entry', ARGV[2])
else
  -- Past the first entry the stream must exist: a stale head must not start a new one.
  added = redis.pcall('XADD', KEYS[1], 'NOMKSTREAM', ARGV[1], 'entry', ARGV[2])
end
if not added then return 'head' end
if type(added) == 'table' and added.err then
  if string.find(added.err, 'equal or smaller', 1, true) then return 'head' end
  return redis.error_reply(added.err)
end
redis.call('SET', KEYS[2], ARGV[4])
return 'ok'
"#;

/// KEYS: audit:log. ARGV: the far bound, the near bound (XRANGE IDs: `(12-0`, `+`,
/// `-`), '1' newest first, the limit, how many entries to read at most, then the kinds.
/// Walks the stream from the near bound a page at a time, keeping entries whose
/// `detail.kind` is one of the kinds, and stops at the limit or after reading the
/// budget (a long walk does not hold the server). Answers {'end' | 'more', the ID it
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
    rows = redis.call('XREVRANGE', KEYS[1], near, far, 'COUNT', 256)
  else
    rows = redis.call('XRANGE', KEYS[1], near, far, 'COUNT', 256)
  end
  if #rows == 0 then out[1] = 'end'; return out end
  for i = 1, #rows do
    read = read + 1
    local id, fields = rows[i][1], rows[i][2]
    near = '(' .. id
    out[2] = id
    local body = nil
    for f = 1, #fields, 2 do
      if fields[f] == 'entry' then body = fields[f + 1] end
    end
    if body then
      local ok, e = pcall(cjson.decode, body)
      if ok and type(e) == 'table' and type(e.detail) == 'table' and want[e.detail.kind] then
        out[#out + 1] = body
        if #out - 2 >= limit then return out end
      end
    end
  end
  if #rows < 256 then out[1] = 'end'; return out end
end
return out
"#;

/// KEYS: audit (the sorted set the log was kept in before), audit:head (its recorded
/// head), audit:log (the stream), audit:orphaned. Moves the old log into the stream once,
/// in order, and keeps the old recorded count as the stream's top (so an entry deleted
/// from the end, or the whole log, is still missed). Refuses, moving nothing, when two
/// entries claim one seq. When the stream already exists (an older dealflow wrote the
/// old layout after the move), the old keys are renamed aside rather than spliced (the
/// sorted set to audit:orphaned, its head to audit:orphaned:head; a head alone to
/// audit:orphaned) and the answer is -1; else how many entries moved.
pub(super) const MIGRATE: &str = r#"
local function top_of(recorded)
  local r = redis.pcall('XSETID', KEYS[3], string.format('%d-0', recorded), 'ENTRIESADDED', recorded)
  if type(r) == 'table' and r.err then
    redis.call('DEL', KEYS[3])
    return redis.error_reply('moving the audit log into a stream: XSETID: ' .. r.err .. ' (Redis 7.0 or later is needed); nothing was moved')
  end
  return nil
end
local has_old, has_head = redis.call('EXISTS', KEYS[1]) == 1, redis.call('EXISTS', KEYS[2]) == 1
if not has_old and not has_head then return 0 end
local recorded = tonumber(redis.call('HGET', KEYS[2], 'count') or '0') or 0
if redis.call('EXISTS', KEYS[3]) == 1 then
  if redis.call('EXISTS', KEYS[4]) == 1 then
    return redis.error_reply('the audit log is a stream and an older dealflow wrote the old layout again, while ' .. KEYS[4] .. ' still holds the last such set-aside: upgrade every dealflow using this store, then remove ' .. KEYS[4] .. ' once read')
  end
  if has_old then redis.call('RENAME', KEYS[1], KEYS[4]) end
  if has_head then
    if has_old then
      redis.call('RENAME', KEYS[2], KEYS[4] .. ':head')
    else
      redis.call('RENAME', KEYS[2], KEYS[4])
    end
  end
  return -1
end
if not has_old then
  -- Only the recorded head is left: the whole log was deleted. Keep its count as the
  -- top of an empty stream, so the loss stays visible.
  if recorded > 0 then
    redis.call('XGROUP', 'CREATE', KEYS[3], 'migrate', '0', 'MKSTREAM')
    redis.call('XGROUP', 'DESTROY', KEYS[3], 'migrate')
    local err = top_of(recorded)
    if err then return err end
  end
  redis.call('DEL', KEYS[2])
  return 0
end
local n = redis.call('ZCARD', KEYS[1])
local last = 0
for i = 0, n - 1, 1000 do
  local rows = redis.call('ZRANGE', KEYS[1], i, i + 999, 'WITHSCORES')
  for j = 2, #rows, 2 do
    local s = tonumber(rows[j])
    if s <= last or s ~= math.floor(s) then
      return redis.error_reply('audit entry #' .. rows[j] .. ' appears twice or out of order: the old log was not moved')
    end
    last = s
  end
end
for i = 0, n - 1, 1000 do
  local rows = redis.call('ZRANGE', KEYS[1], i, i + 999, 'WITHSCORES')
  for j = 1, #rows, 2 do
    redis.call('XADD', KEYS[3], string.format('%d-0', tonumber(rows[j + 1])), 'entry', rows[j])
  end
end
if recorded > last then
  local err = top_of(recorded)
  if err then return err end
end
redis.call('DEL', KEYS[1], KEYS[2])
return n
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
