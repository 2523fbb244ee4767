-- post.lua — wrk script: POSTs dojo function calls (/api/query, /api/mutation)
-- taken round-robin from a requests file, so one run can act as many users.
--
--   BENCH_REQUESTS=reqs.tsv BENCH_ROUTE=/api/query \
--     wrk -t2 -c64 -d10s --latency -s bench/wrk/post.lua http://127.0.0.1:PORT
--
-- Each line of BENCH_REQUESTS is "<Authorization header value><TAB><JSON body>",
-- e.g. "Bearer eyJ...<TAB>{"path":"users:me","args":{},"format":"json"}" or
-- "Convex <admin key><TAB>{"path":"admin:grantCredits",...}". The requests are
-- built once per thread (wrk.format), so the per-request cost in wrk is a table
-- lookup. Each thread starts at a different line. Whether calls succeeded is
-- read from dojo's /metrics by bench/run.sh, not here (a response() hook would
-- make wrk parse every body and steal CPU from the server on a 2-core box).

local route = os.getenv("BENCH_ROUTE") or "/api/query"
local file = os.getenv("BENCH_REQUESTS") or error("BENCH_REQUESTS must name the requests file")

local lines = {}
for line in io.lines(file) do
  local auth, body = line:match("^([^\t]*)\t(.*)$")
  if auth then lines[#lines + 1] = { auth = auth, body = body } end
end
if #lines == 0 then error("no requests in " .. file) end

local threads = 0
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end

local requests, n, i
function init(args)
  requests = {}
  for k, l in ipairs(lines) do
    local headers = { ["Content-Type"] = "application/json" }
    if l.auth ~= "" then headers["Authorization"] = l.auth end
    requests[k] = wrk.format("POST", route, headers, l.body)
  end
  n = #requests
  i = ((tonumber(offset) or 0) * 7919) % n
end

function request()
  i = i % n + 1
  return requests[i]
end
