-- wrk script: the load benchmark's traffic mix at full speed, for capacity.
--
--   wrk -t2 -c16 -d15s --latency -s bench/mixed.lua BASE -- <first id> <token> <first ping id> <ping ids>
--
-- Of every 20 requests: 1 Digitaleo ping (5%), 3 Red Oxygen replies (15%), 16 receipts (80%).
-- Ids differ per request (each thread counts from first + thread number * 10^7), so nothing
-- takes the cheaper duplicate path. Answers other than 200 are counted and printed.

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_number", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  next_id = tonumber(args[1] or "1") + thread_number * 10000000
  token = args[2] or ""
  first_ping = tonumber(args[3] or "1")
  ping_ids = tonumber(args[4] or "1")
  non200 = 0
end

local RECEIPT = '{"Messages":{"Count":1,"1":{"SMSId":%d,"DestTn":"+61409000000","Result":"0000",'
             .. '"ResultText":"Delivered","Timestamp":"2024-09-20T04:39:13.819Z"}}}'
local JSON = { ["Content-Type"] = "application/json" }
local FORM = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function request()
  next_id = next_id + 1
  local slot = next_id % 20
  if slot == 0 then
    local ping = first_ping + (next_id % ping_ids)
    return wrk.format("GET", string.format("/digitaleo/ping?sms_id=%d&token=%s", ping, token))
  elseif slot == 1 or slot == 8 or slot == 14 then
    local body = string.format("SmsId=%d&DestTN=61409000000&ReplyText=Yes+please+%d&EmailId=%d&CustomerId=42",
                               next_id, next_id, next_id)
    return wrk.format("POST", "/redoxygen/reply?token=" .. token, FORM, body)
  end
  return wrk.format("POST", "/redoxygen/receipt?token=" .. token, JSON, string.format(RECEIPT, next_id))
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
  io.write(string.format("non200 responses: %d\n", total))
end
