-- POST /smart-api/orders/offline: a new 3-line offline order per request (numbered by run,
-- thread and request).
-- args: rate/thread, threads, site, siteToken, order number prefix, products file
dofile(os.getenv("RT_BENCH_LUA") .. "/common.lua")

function init(args)
  init_common(args)
  prefix = args[5]
  products = read_lines(args[6])
  headers = {
    ["Content-Type"] = "application/json", ["site"] = args[3], ["siteToken"] = args[4],
    ["channel"] = "store",
  }
end

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', "") .. '"'
end

function request()
  sent = sent + 1
  local items, seen = {}, {}
  while #items < 3 do
    local p = products[math.random(#products)]
    if not seen[p] then
      seen[p] = true
      table.insert(items, '{"refCode":' .. quote(p) .. ',"qty":1,"price":"2.50"}')
    end
  end
  local body = '{"user":{"id":"u' .. math.random(100000) .. '"},"order":{"refCode":"' ..
    prefix .. "-" .. run .. "-" .. id .. "-" .. sent ..
    '","currency":"GBP","subTotal":"7.50","shipping":"0","total":"7.50","items":[' ..
    table.concat(items, ",") .. ']}}'
  return wrk.format("POST", "/smart-api/orders/offline", headers, body)
end
