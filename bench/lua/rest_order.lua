-- rest.pagex, type order: a new 3-line order per request (numbered by run, thread and
-- request), in one of the known sessions.
-- args: rate/thread, threads, sessions file, site, clientToken, order number prefix,
-- products file
dofile(os.getenv("RT_BENCH_LUA") .. "/common.lua")

function init(args)
  init_common(args)
  sessions = read_lines(args[3])
  site, token, prefix = args[4], args[5], args[6]
  products = read_lines(args[7])
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
end

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', "") .. '"'
end

function request()
  sent = sent + 1
  local s = sessions[(sent % #sessions) + 1]
  local session, cuid = s:match("^(%S+) (%S+)$")
  local items, seen = {}, {}
  while #items < 3 do
    local p = products[math.random(#products)]
    if not seen[p] then
      seen[p] = true
      table.insert(items, '{"refCode":' .. quote(p) .. ',"qty":1,"price":"2.50"}')
    end
  end
  local jd = '{"type":"order","site":' .. quote(site) .. ',"clientToken":' .. quote(token) ..
    ',"session":' .. quote(session) .. ',"cuid":' .. quote(cuid) ..
    ',"lang":"en-gb","order":{"orderNo":"' .. prefix .. "-" .. run .. "-" .. id .. "-" .. sent ..
    '","currency":"GBP","subtotal":"7.50","shipping":"0","total":"7.50","items":[' ..
    table.concat(items, ",") .. ']}}'
  return wrk.format("POST", "/tracker/api/v1_4/rest.pagex", headers, "jd=" .. urlencode(jd))
end
