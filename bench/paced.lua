-- wrk script: every connection waits PAUSE ms (default 1) between an
-- answer and its next request, so 64 connections offer a steady load well
-- below saturation (about 64 / (PAUSE + latency) per ms) and the latency
-- measured is the server's, not the length of a saturated queue.
--
--   wrk -t2 -c64 -d10s --latency -s bench/paced.lua URL -- 1

local pause = 1

function init(args)
	pause = tonumber(args[1] or "1")
end

function delay()
	return pause
end
