-- wrk script: GET a random connection's current-token, or (with the
-- subject "-") a random source's own: the same spread of names either
-- way, so the two figures differ only by the connection lookup.
--
--   wrk -t2 -c64 -d10s -s bench/conn_random.lua http://127.0.0.1:P -- \
--       b 10 10000      (10 sources b0000.., 10000 subjects u00000.. each)

local reqs = {}
local n = 0

function init(args)
	local prefix = args[1] or "b"
	local sources = tonumber(args[2] or "1")
	local per = tonumber(args[3] or "0")
	math.randomseed(tonumber(args[4] or os.time()))
	for i = 1, 20000 do
		local s = math.random(sources) - 1
		local path
		if per > 0 then
			path = string.format(
			    "/api/tokens/%s%04d/connections/u%05d/current-token",
			    prefix, s, math.random(per) - 1)
		else
			path = string.format("/api/tokens/%s%04d/current-token",
			    prefix, s)
		end
		reqs[i] = wrk.format("GET", path)
	end
	n = 20000
end

function request()
	return reqs[math.random(n)]
end
