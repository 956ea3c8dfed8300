-- wrk script: POST a Red Oxygen delivery receipt with a distinct SMSId on every request.
--
--   wrk -t2 -c16 -d10s --latency -s bench/receipt.lua URL -- <first SMSId>
--
-- The SMSId must differ per request: smshooks acknowledges a repeated callback as a
-- duplicate without storing it, a cheaper path than the one real traffic takes.
-- Each thread counts from its own range (first + thread number * 10^7), so no two
-- requests of a run share an id; the caller gives each run its own `first`.

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_number", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  next_id = tonumber(args[1] or "1") + thread_number * 10000000
  non200 = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

local BODY = '{"Messages":{"Count":1,"1":{"SMSId":%d,"DestTn":"+61409000000","Result":"0000",'
          .. '"ResultText":"Delivered","Timestamp":"2024-09-20T04:39:13.819Z"}}}'

function request()
  next_id = next_id + 1
  return wrk.format(nil, nil, nil, string.format(BODY, next_id))
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("non200")
  end
  -- Parsed by bench/ingest.
  io.write(string.format("non200 responses: %d\n", total))
end
