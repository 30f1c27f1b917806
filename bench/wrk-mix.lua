-- wrk script for bench/compare.js: sends the bench's allow/deny mix round-robin and counts answers by status,
-- so a contestant that answers everything 200 (or everything 403) is caught instead of ranked.
--
--   wrk -t1 -c8 -d5s --latency -s bench/wrk-mix.lua http://127.0.0.1:PORT -- MIX.lua
--
-- MIX.lua (written by compare.js) returns a list of { method, path, headers, body }. In done(), prints one line
-- "COMPARE {json}" with the request count, duration, p50/p99 in microseconds, statuses and socket errors.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local requests = {}
local next_index = 0

function init(args)
  local mix = dofile(args[1])
  -- Formatted once: wrk.format per request would cost the load generator more than some contestants do.
  for i, r in ipairs(mix) do
    requests[i] = wrk.format(r.method, r.path, r.headers, r.body)
  end
  s2xx, s403, other = 0, 0, 0
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    s2xx = s2xx + 1
  elseif status == 403 then
    s403 = s403 + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total = { s2xx = 0, s403 = 0, other = 0 }
  for _, thread in ipairs(threads) do
    for name in pairs(total) do
      total[name] = total[name] + (thread:get(name) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'COMPARE {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"s2xx":%d,"s403":%d,"other":%d,'
      .. '"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    total.s2xx, total.s403, total.other, e.connect, e.read, e.write, e.timeout))
end
