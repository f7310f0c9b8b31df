-- wrk script for the webhook ingest benchmark (scripts/bench-webhooks.sh).
--
-- Every request is a distinct, correctly signed Standard Webhooks delivery read from a file that
-- was generated before the timed window (one per line: id TAB timestamp TAB signature TAB body),
-- so wrk spends no time signing and the server never sees a redelivery. Each wrk thread takes
-- every n-th line and keeps the requests pre-formatted; `request()` only hands them out.
-- Usage: wrk -s bench-webhooks.lua URL -- FILE THREADS

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local reqs = {}
local idx = 0
wrapped = 0

function init(args)
  local file, n = args[1], tonumber(args[2]) or 1
  local i = 0
  for line in io.lines(file) do
    if i % n == tid then
      local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["webhook-id"] = id,
        ["webhook-timestamp"] = ts,
        ["webhook-signature"] = sig,
      }, body)
    end
    i = i + 1
  end
end

function request()
  idx = idx + 1
  if idx > #reqs then
    -- Out of fresh deliveries: the rest are redeliveries (answered 200 as duplicates), which
    -- would flatter nothing but measure a different path; the script reports it.
    idx = 1
    wrapped = wrapped + 1
  end
  return reqs[idx]
end

function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do
    w = w + (t:get("wrapped") or 0)
  end
  io.write(string.format("wrapped: %d\n", w))
end
