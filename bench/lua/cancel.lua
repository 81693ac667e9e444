-- cancel.pagex, whole orders: each request cancels the next order of this thread's share.
-- args: rate/thread, threads, targets file (order numbers), sessions file ("session cuid"),
-- site
dofile(os.getenv("RT_BENCH_LUA") .. "/common.lua")

function init(args)
  init_common(args)
  targets = read_lines(args[3])
  sessions = read_lines(args[4])
  path = "/tracker/api/v1_4/" .. args[5] .. "/order/cancel.pagex"
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
end

function request()
  sent = sent + 1
  local s = sessions[(sent % #sessions) + 1]
  local session, cuid = s:match("^(%S+) (%S+)$")
  local body = "session=" .. urlencode(session) .. "&cuid=" .. urlencode(cuid) ..
    "&orderNo=" .. urlencode(next_of(targets))
  return wrk.format("POST", path, headers, body)
end
