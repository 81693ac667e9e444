-- The recommendation queries of the management API: top sellers, or bought together with a
-- product, for a buyer (cuid) so that what they bought is left out.
-- args: rate/thread, threads, admin token, site, kind (top-sellers | bought-together),
-- products file
dofile(os.getenv("RT_BENCH_LUA") .. "/common.lua")

function init(args)
  init_common(args)
  headers = { ["Authorization"] = "Bearer " .. args[3] }
  base = "/api/v1/sites/" .. args[4] .. "/recs/" .. args[5] .. "?limit=10"
  kind = args[5]
  products = read_lines(args[6])
end

function request()
  sent = sent + 1
  local path = base .. "&cuid=cuid-u" .. math.random(20000)
  if kind == "bought-together" then
    path = path .. "&refCode=" .. urlencode(products[math.random(#products)])
  end
  return wrk.format("GET", path, headers)
end
