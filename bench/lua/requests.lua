-- Replays prebuilt raw HTTP requests (bench/wrk.py writes them), cycling in order.
-- $BENCH_REQUESTS names a file of entries "<byte length>\n<raw request bytes>".
-- Every signed request carries its own Request-Id, so the file holds more entries than
-- a run sends; bench/wrk.py checks that no entry was sent twice.

local entries = {}
local count = 0
local next_index = 0

function init(args)
  local f = assert(io.open(os.getenv("BENCH_REQUESTS"), "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = string.find(data, "\n", pos, true)
    local len = tonumber(string.sub(data, pos, nl - 1))
    count = count + 1
    entries[count] = string.sub(data, nl + 1, nl + len)
    pos = nl + 1 + len
  end
end

function request()
  next_index = next_index + 1
  if next_index > count then
    next_index = 1
  end
  return entries[next_index]
end

-- One JSON line for bench/wrk.py; latency in microseconds.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, '
      .. '"read": %d, "write": %d, "status": %d, "timeout": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
