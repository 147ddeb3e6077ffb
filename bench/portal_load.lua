-- wrk script for bench/portal_load.py: each request is one line of a prepared file
-- ("path<TAB>cookie<TAB>form body<TAB>expected Location prefix"), each used once (a challenge
-- is single-use). The threads take every n-th line; a thread stops when its lines are
-- answered. A request counts as done only when the portal answered 303 to the expected place
-- (a refused form also redirects, to /login, or answers 403).
--   wrk -t2 -c8 -d60s -s bench/portal_load.lua https://127.0.0.1:PORT -- FILE THREADS

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local all = {}
  for line in io.lines(args[1]) do
    table.insert(all, line)
  end
  local n = tonumber(args[2])
  mine = {}
  for i = id + 1, #all, n do
    local path, cookie, body, expect = line_fields(all[i])
    table.insert(mine, { path = path, cookie = cookie, body = body, expect = expect })
  end
  sent = 0
  answered = 0
  succeeded = 0
  failed = 0
  sample = ""
  pending = {}
end

function line_fields(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    table.insert(fields, field)
  end
  return fields[1], fields[2], fields[3], fields[4]
end

function request()
  sent = sent + 1
  local entry = mine[sent]
  if entry == nil then
    -- Nothing left for this connection: stop the thread (its other connections' answers,
    -- at most c/t - 1 of them, go uncounted).
    wrk.thread:stop()
    entry = mine[#mine]
  end
  table.insert(pending, entry.expect)
  return wrk.format("POST", entry.path, {
    ["Cookie"] = entry.cookie,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, entry.body)
end

function response(status, headers, body)
  answered = answered + 1
  local location = headers["Location"] or headers["location"] or ""
  local expect = table.remove(pending, 1) or "?"
  if status == 303 and location:sub(1, #expect) == expect then
    succeeded = succeeded + 1
  else
    failed = failed + 1
    if sample == "" then
      sample = status .. " " .. location .. " " .. body:sub(1, 200):gsub("%s+", " ")
    end
  end
  if answered >= #mine then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local ok, bad = 0, 0
  local first = ""
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("succeeded")
    bad = bad + thread:get("failed")
    if first == "" then first = thread:get("sample") end
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT ok=%d failed=%d seconds=%.3f rate=%.1f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
    ok, bad, seconds, ok / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  if bad > 0 then
    io.write("FIRST FAILURE " .. first .. "\n")
  end
end
