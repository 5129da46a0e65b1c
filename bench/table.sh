# bench/table.sh: the table of every figure, ratio and target (sourced
# by bench/run.sh), printed from the results file.

verdict() {	# verdict VALUE OP TARGET
	awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
		if (v == "n/a" || v == "nan" || v == "") { print "n/a"; exit }
		ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0)
		print ok ? "met" : "MISSED" }'
}

row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; }

# g KEY [DECIMALS]: a result, rounded when it is a number.
g() {
	awk -v v="$(get "$1")" -v d="${2:-}" 'BEGIN {
		if (d != "" && v ~ /^-?[0-9]+(\.[0-9]+)?$/) printf "%.*f\n", d, v
		else print v }'
}

# per-round req/s of the variants, for the record
round_line() {
	local n
	for n in "$@"; do
		[ -f "$W/round-$n" ] || continue
		printf '%s: %s  ' "$n" "$(awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $2 }' "$W/round-$n")"
	done
}

# bench_table: the Markdown table, on stdout.
bench_table() {
	echo
	echo "kiln bench $(date -u +%Y-%m-%dT%H:%M:%SZ): $WORKERS workers, wrk -t$THREADS" \
	    "-c$CONNS -d${DUR}s, $ROUNDS round(s) per comparison (median)$([ "$QUICK" = 1 ] && echo ', QUICK smoke run: not a measurement')"
	echo
	row "figure" "measured" "target" "status"
	row "---" "---" "---" "---"
	row "current-token throughput (req/s)" "$(g rps_token 0)" "" ""
	row "framework ceiling /bench/constant (req/s)" "$(g rps_const 0)" "" ""
	row "nginx static file (req/s)" "$(g rps_nginx 0)" "" ""
	row "**current-token / ceiling** (median of per-round ratios)" "$(g ratio_const 3)x" ">= 0.90x" "$(verdict "$(get ratio_const)" '>=' 0.90)"
	row "**current-token / nginx** (median of per-round ratios)" "$(g ratio_nginx 3)x" ">= 1.40x" "$(verdict "$(get ratio_nginx)" '>=' 1.40)"
	row "server CPU per request: token / ceiling / nginx (us)" "$(g cpu_token 2) / $(g cpu_const 2) / $(g cpu_nginx 2)" "" ""
	row "token CPU per request vs ceiling; vs nginx" "$(g cpu_ratio_const 3)x; $(g cpu_ratio_nginx 3)x" "" ""
	row "busiest worker's share of server CPU: token / ceiling / nginx" "$(g share_token 2) / $(g share_const 2) / $(g share_nginx 2)" "" ""
	row "**current-token latency p50 / p99** (ms, 64 conns, saturated)" "$(g p50_token 3) / $(g p99_token 3)" "p99 <= 1 ms" "$(verdict "$(get p99_token)" '<=' 1)"
	row "ceiling p50 / p99; nginx p50 / p99 (ms)" "$(g p50_const 3) / $(g p99_const 3); $(g p50_nginx 3) / $(g p99_nginx 3)" "" ""
	row "**current-token latency p50 / p99, paced** (ms, wrk -t$PACE_THREADS -c$CONNS, ${PACE_MS} ms pause; $(g prps_token 0) req/s)" "$(g pp50_token 3) / $(g pp99_token 3)" "p99 <= 1 ms" "$(verdict "$(get pp99_token)" '<=' 1)"
	row "paced: ceiling p50 / p99 ($(g prps_const 0) req/s); nginx p50 / p99 ($(g prps_nginx 0) req/s)" "$(g pp50_const 3) / $(g pp99_const 3); $(g pp50_nginx 3) / $(g pp99_nginx 3)" "" ""
	row "random names, kiln holding 1 source (req/s, 1 run)" "$(g rps_rand1_only 0)" "" ""
	row "random names over 1 of $MANY sources (req/s)" "$(g rps_rand1 0)" "" ""
	row "**random names over $MID of $MANY** (req/s; ratio to 1)" "$(g rps_randmid 0); $(g ratio_mid 3)x" ">= 0.90x" "$(verdict "$(get ratio_mid)" '>=' 0.90)"
	row "**random names over $MANY of $MANY** (req/s; ratio to 1)" "$(g rps_randmany 0); $(g ratio_many 3)x" ">= 0.90x" "$(verdict "$(get ratio_many)" '>=' 0.90)"
	row "CPU per request, 1 / $MANY names (us)" "$(g cpu_rand1 2) / $(g cpu_randmany 2)" "" ""
	row "worker RSS, 1 source (kB)" "$(g rss_1)" "" ""
	row "**worker RSS, $MANY sources** (kB, largest worker)" "$(g rss_many)" "<= 65536" "$(verdict "$(get rss_many)" '<=' 65536)"
	row "bytes per source ((RSS $MANY - RSS 1) / ($MANY - 1))" "$(g bytes_per_source 0)" "" ""
	row "**idle CPU, $MANY sources scheduled** (% of one core, ${IDLE_S} s, all kiln processes)" "$(g idle_cpu 2)" "<= 2" "$(verdict "$(get idle_cpu)" '<=' 2)"
	row "PostgreSQL CPU meanwhile (% of one core)" "$(g idle_pg_cpu 2)" "" ""
	row "**refresh propagation** p50 / p99 / max (ms, commit -> every worker)" "$(g prop_p50 1) / $(g prop_p99 1) / $(g prop_max 1)" "p99 <= 100" "$(verdict "$(get prop_p99)" '<=' 100)"
	row "propagation samples (missing)" "$(g prop_n) ($(g prop_missing))" "" ""
	row "**boot to first served token**, 1 source (ms, median / max of $BOOTS)" "$(g boot_med 1) / $(g boot_max 1)" "<= 300" "$(verdict "$(get boot_max)" '<=' 300)"
	row "boot to first served token, $MANY sources stored (ms)" "$(g boot_many 1)" "" ""
	row "first start with $MANY sources: upsert + boot (ms); all tokens (s)" "$(g boot_many_first 0); $(g acquire_many_s)" "" ""
	row "**refresh capacity**, $CAP_N sources x ${CAP_LIFETIME} s (refreshes/s sustained, ${CAP_S} s)" "$(g cap_rate 0)" ">= 200" "$(verdict "$(get cap_rate)" '>=' 200)"
	row "**tokens expired** (PostgreSQL, max over 1 s samples)" "$(g cap_expired_pg)" "0" "$(verdict "$(get cap_expired_pg)" '<=' 0)"
	row "expired or 503 answers (HTTP sampling, 200/s)" "$(g cap_expired_http) of $(g cap_samples)" "0" "$(verdict "$(get cap_expired_http)" '<=' 0)"
	row "failed refreshes in the window; max lag past refresh_at (s)" "$(g cap_failures); $(g cap_lag_max)" "" ""
	row "first start: all $CAP_N tokens (s from exec; tokens/s)" "$(g cap_acquire_s); $(g cap_burst_rate)" "" ""
	row "valid tokens when the acquisition wait ended" "$(g cap_valid_start) of $CAP_N" "" ""
	row "answer bytes body/head: token, ceiling, nginx" "$(g body_token)/$(g head_token), $(g body_const)/$(g head_const), $(g body_nginx)/$(g head_nginx)" "" ""
	row "kiln workers restarted by Kore (phase A / B / C)" "$(g deaths_a) / $(g deaths_b) / $(g deaths_c)" "0 (sanity)" "$(verdict "$(sum_of "$(get deaths_a)" "$(get deaths_b)" "$(get deaths_c)")" '<=' 0)"
	row "seccomp kills of kiln by syscall nr (dmesg)" "$(sandbox_syscalls)" "" ""
	row "kiln error log lines, phase A" "$(cat "$W/errors-a" 2>/dev/null)" "" ""
	row "kiln error log lines, phase B" "$(cat "$W/errors-b" 2>/dev/null)" "" ""
	row "kiln error log lines, phase C" "$(cat "$W/errors-c" 2>/dev/null)" "" ""
	row "non-2xx answers or socket errors in wrk runs" "$(sum_of "$(get bad_a)" "$(get bad_b)")" "0 (sanity)" "$(verdict "$(sum_of "$(get bad_a)" "$(get bad_b)")" '<=' 0)"
	echo
	echo "req/s per round: $(round_line token const nginx)"
	echo "req/s per round: $(round_line rand1 randmid randmany)"
	echo
}
