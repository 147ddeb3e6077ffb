-- wrk script for bench/portal_load.py: each request is one line of a prepared file
-- ("path<TAB>cookie<TAB>form body"), each used once (a challenge is single-use). One connection a thread (-t N -c N); the threads take every N-th line. A
-- thread stops when its lines are answered, noting the wall-clock time and touching
-- DONE_DIR/<thread>; wrk runs for its fixed duration unless interrupted, so the driver sends
-- SIGINT once every thread is done. A request counts only when the portal answered 303 to the
-- expected place, EXPECT (a refused form also redirects, to /login, or answers 403).
--   wrk -tN -cN -d600s -s bench/portal_load.lua https://127.0.0.1:PORT -- FILE N DONE_DIR EXPECT

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
    local path, cookie, body = line_fields(all[i])
    table.insert(mine, { path = path, cookie = cookie, body = body })
  end
  done_dir = args[3]
  expect = args[4]
  started = wall_clock()
  finished = 0
  sent = 0
  answered = 0
  succeeded = 0
  failed = 0
  sample = ""
end

function wall_clock()
  local pipe = io.popen("date +%s.%N")
  local now = tonumber(pipe:read("*l"))
  pipe:close()
  return now
end

function line_fields(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    table.insert(fields, field)
  end
  return fields[1], fields[2], fields[3], fields[4]
end

function request()
  -- wrk calls the first thread's request() once before the run, to check what it returns:
  -- that call must not spend a form.
  if id == 0 and not checked then
    checked = true
    return wrk.format("GET", "/login")
  end
  sent = sent + 1
  local entry = mine[sent]
  if entry == nil then
    -- wrk asks for the next request before the stop at the last answer takes effect: a
    -- page view that is not counted (a form again would be a replay).
    return wrk.format("GET", "/login")
  end
  return wrk.format("POST", entry.path, {
    ["Cookie"] = entry.cookie,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, entry.body)
end

function response(status, headers, body)
  answered = answered + 1
  if answered > #mine then
    return -- the page view after the last form
  end
  local location = headers["Location"] or headers["location"] or ""
  if status == 303 and location:sub(1, #expect) == expect then
    succeeded = succeeded + 1
  else
    failed = failed + 1
    if sample == "" then
      -- The reason a 403 page gives, else the start of the body.
      local reason = body:match("<main.-<p[^>]*>(.-)</p>") or body:sub(1, 200)
      sample = status .. " " .. location .. " " .. reason:gsub("%s+", " ")
    end
  end
  if answered == #mine then
    finished = wall_clock()
    io.open(done_dir .. "/" .. id, "w"):close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local ok, bad = 0, 0
  local first = ""
  local from, to = math.huge, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("succeeded")
    bad = bad + thread:get("failed")
    if first == "" then first = thread:get("sample") end
    from = math.min(from, thread:get("started"))
    to = math.max(to, thread:get("finished"))
  end
  -- From the first thread's start to the last one's last answer.
  local seconds = to - from
  io.write(string.format(
    "RESULT ok=%d failed=%d seconds=%.3f rate=%.1f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
    ok, bad, seconds, ok / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  if bad > 0 then
    io.write("FIRST FAILURE " .. first .. "\n")
  end
end
