# bench/phase_c.sh: phase C, refresh capacity (sourced by bench/run.sh).
# A fresh database, MANY sources with short lifetimes: sustained refresh
# rate, tokens expired, HTTP sampling.

phase_c() {
	local l0 acq
	stop_kiln
	l0=$(log_lines)
	say "C: refresh capacity, $CAP_N sources with ${CAP_LIFETIME} s lifetimes"
	K_DB=kilncap
	K_NAME=c0000
	K_SOURCES=$W/sources-cap.json
	gen_sources "$K_SOURCES" c "$CAP_N" "$CAP_LIFETIME"
	start_kiln cap /health
	acq=$(wait_tokens kilncap c "$CAP_N" "$ACQ_TIMEOUT")
	# from kiln's exec, as the first token is served only after a wave
	acq=$(awk -v a="$acq" -v b="$BOOT_MS" 'BEGIN { if (a ~ /^>/) print a;
	    else printf "%.1f", a + b / 1000 }')
	put cap_acquire_s "$acq"
	put cap_burst_rate "$(awk -v a="$acq" -v n="$CAP_N" 'BEGIN {
	    if (a ~ /^>/ || a <= 0) print "n/a"; else printf "%.0f", n / a }')"
	say "C: $CAP_N tokens: $(get cap_acquire_s) s; sustained window ${CAP_S} s"
	put cap_valid_start "$(q kilncap "SELECT count(*) FROM tokens WHERE
	    expires_at > now()")"
	# Let the first wave of refreshes come due, then measure a window.
	sleep $((CAP_LIFETIME / 2))
	e0=$(q kilncap "SELECT count(*) FROM refresh_events WHERE outcome = 'success'")
	f0=$(q kilncap "SELECT count(*) FROM refresh_events WHERE outcome = 'failure'")
	t0=$(date +%s.%N)
	node bench/probe.js sample --port "$K_PORT" --prefix c --count "$CAP_N" \
	    --rate 200 --seconds "$CAP_S" >"$W/cap-sample.json" &
	SAMPLER=$!
	PIDS+=($SAMPLER)
	: >"$W/cap-pg"
	end=$(( $(date +%s) + CAP_S ))
	while [ "$(date +%s)" -lt "$end" ]; do
		# expired now, and how late the scheduler is (s past refresh_at)
		q kilncap "SELECT count(*) FILTER (WHERE expires_at IS NULL OR
		    expires_at <= now()), greatest(0, coalesce(extract(epoch
		    FROM max(now() - refresh_at)), 0))::numeric(10,1)
		    FROM tokens" | tr '|' ' ' >>"$W/cap-pg"
		sleep 1
	done
	wait "$SAMPLER"
	t1=$(date +%s.%N)
	e1=$(q kilncap "SELECT count(*) FROM refresh_events WHERE outcome = 'success'")
	f1=$(q kilncap "SELECT count(*) FROM refresh_events WHERE outcome = 'failure'")
	put cap_rate "$(awk -v a="$e0" -v b="$e1" -v s="$t0" -v e="$t1" \
	    'BEGIN { printf "%.0f", (b - a) / (e - s) }')"
	put cap_failures "$((f1 - f0))"
	put cap_expired_pg "$(awk '{ if ($1 > m) m = $1 } END { print m + 0 }' "$W/cap-pg")"
	put cap_lag_max "$(awk '{ if ($2 > m) m = $2 } END { printf "%.1f", m }' "$W/cap-pg")"
	put cap_samples "$(json_field requests <"$W/cap-sample.json")"
	put cap_expired_http "$(json_field expired <"$W/cap-sample.json")"
	put cap_upstream "$(curl -fsS "http://127.0.0.1:$UP_PORT/_stats" | json_field token_requests)"
	put deaths_c "$(worker_deaths "$l0")"
	echo "$(error_lines "$l0")" >"$W/errors-c"
	stop_kiln
}
