-- DELETE /smart-api/orders/offline/{order}: cancels the next offline order of this thread.
-- args: rate/thread, threads, targets file, site, siteToken
dofile(os.getenv("RT_BENCH_LUA") .. "/common.lua")

function init(args)
  init_common(args)
  targets = read_lines(args[3])
  headers = { ["site"] = args[4], ["siteToken"] = args[5], ["channel"] = "store" }
end

function request()
  sent = sent + 1
  return wrk.format("DELETE", "/smart-api/orders/offline/" .. urlencode(next_of(targets)),
    headers)
end
