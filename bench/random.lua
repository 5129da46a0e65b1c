-- wrk script: GET /api/tokens/<name>/current-token with a random name from
-- <prefix>0000 .. <prefix>(count-1) (4 digits, so every name has the same
-- length). The requests are formatted once in init(); request() only picks.
--
--   wrk -t2 -c64 -d10s -s bench/random.lua http://127.0.0.1:P -- b 10000

local reqs = {}
local n = 0

function init(args)
	local prefix = args[1] or "b"
	local count = tonumber(args[2] or "1")
	math.randomseed(os.time())
	for i = 0, count - 1 do
		reqs[i + 1] = wrk.format("GET", string.format(
		    "/api/tokens/%s%04d/current-token", prefix, i))
	end
	n = count
end

function request()
	return reqs[math.random(n)]
end

