-- Shared by every benchmark script: an offered rate per thread (wrk2-style schedule, so a
-- slow reply does not lower the rate offered while connections are free), target lists read
-- from a file, and a JSON summary printed at the end.
--
-- Arguments after "--": requests/s per thread (0 = as fast as the connections go), the number
-- of threads, then the script's own. The harness numbers its runs (RT_BENCH_RUN) and says where
-- in each target list this run starts (RT_BENCH_START: the targets the endpoint's earlier runs
-- used), so every run places orders of its own and cancels orders no run cancelled before.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } rt_timespec;
  int clock_gettime(int clk_id, rt_timespec *tp);
]]
local ts = ffi.new("rt_timespec")

function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

-- Every thread: rate share and schedule.
interval = nil
next_due = nil
sent = 0
failed = 0
wrapped = 0

nthreads = 1
run = os.getenv("RT_BENCH_RUN") or "0"
start = tonumber(os.getenv("RT_BENCH_START") or "0")

function init_common(args)
  local rate = tonumber(args[1] or "0")
  nthreads = tonumber(args[2] or "1")
  if rate and rate > 0 then
    interval = 1000.0 / rate
  end
  math.randomseed(1000 + id)
end

-- The next of a thread's share of ``list`` (every nthreads-th entry from ``start``); counts
-- wrap-arounds (targets used again: the pool was too small).
cursor = 0
function next_of(list)
  local index = start + id + 1 + cursor * nthreads
  if index > #list then
    wrapped = wrapped + 1
    start = 0
    cursor = 0
    index = id + 1
  end
  cursor = cursor + 1
  return list[index]
end

function delay()
  if not interval then
    return 0
  end
  local t = now_ms()
  if not next_due then
    next_due = t
  end
  next_due = next_due + interval
  local wait = next_due - t
  if wait < 0 then
    return 0
  end
  return math.floor(wait)
end

function response(status, headers, body)
  if status < 200 or status >= 300 then
    failed = failed + 1
    if failed <= 3 then
      io.stderr:write("status " .. status .. ": " .. string.sub(body or "", 1, 300) .. "\n")
    end
  end
end

function read_lines(path)
  local out = {}
  for line in io.lines(path) do
    if #line > 0 then
      table.insert(out, line)
    end
  end
  return out
end

function urlencode(s)
  return (string.gsub(s, "[^%w%-_%.~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

function done(summary, latency, requests)
  local fails, wraps, sends = 0, 0, 0
  for _, thread in ipairs(threads) do
    fails = fails + (thread:get("failed") or 0)
    wraps = wraps + (thread:get("wrapped") or 0)
    sends = sends + (thread:get("sent") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"wrapped":%d,"sent":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, fails, e.connect, e.read, e.write,
    e.timeout, wraps, sends, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
