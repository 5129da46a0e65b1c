# bench/phase_b.sh: phase B, many sources (sourced by bench/run.sh).
# Random names over 1 / MID / MANY sources, worker RSS, idle CPU.

phase_b() {
	local l0
	say "B: kiln with $MANY sources (lifetime 3600 s)"
	stop_kiln
	l0=$(log_lines)
	K_SOURCES=$W/sources-many.json
	gen_sources "$K_SOURCES" b "$MANY" 3600
	start_kiln many-first /health
	put boot_many_first "$BOOT_MS"
	put acquire_many_s "$(wait_tokens kiln b "$MANY" "$ACQ_TIMEOUT")"
	say "B: $MANY tokens: $(get acquire_many_s) s; restart with them stored"
	stop_kiln
	start_kiln many
	put boot_many "$BOOT_MS"
	WRK_D=1 wrk_run warm "http://127.0.0.1:$K_PORT" bench/random.lua b "$MANY" >/dev/null

	say "B: throughput with random names over 1 / $MID / $MANY sources"
	rounds "rand1|http://127.0.0.1:$K_PORT|bench/random.lua|b 1" \
	    "randmid|http://127.0.0.1:$K_PORT|bench/random.lua|b $MID" \
	    "randmany|http://127.0.0.1:$K_PORT|bench/random.lua|b $MANY"
	put rps_rand1 "$(col_median rand1 2)"
	put rps_randmid "$(col_median randmid 2)"
	put rps_randmany "$(col_median randmany 2)"
	put ratio_mid "$(ratio randmid rand1)"
	put ratio_many "$(ratio randmany rand1)"
	put cpu_rand1 "$(col_median rand1 7)"
	put cpu_randmany "$(col_median randmany 7)"
	put bad_b "$(( $(bad_total rand1) + $(bad_total randmid) + $(bad_total randmany) ))"

	set -- $(workers_rss)
	put rss_many "$1"
	put rss_many_avg "$2"
	put bytes_per_source "$(awk -v a="$(get rss_1)" -v b="$1" -v n="$MANY" \
	    'BEGIN { if (a !~ /^[0-9]+$/) print "n/a";
	    else printf "%.0f", (b - a) * 1024 / (n - 1) }')"

	say "B: idle CPU over ${IDLE_S} s ($MANY sources scheduled, no requests)"
	sleep 2
	kp="$KILN_PID $(kiln_workers)"
	# shellcheck disable=SC2086
	k0=$(cpu_ticks $kp); g0=$(pg_cpu_ticks); t0=$(date +%s.%N)
	sleep "$IDLE_S"
	# shellcheck disable=SC2086
	k1=$(cpu_ticks $kp); g1=$(pg_cpu_ticks); t1=$(date +%s.%N)
	put idle_cpu "$(awk -v a="$k0" -v b="$k1" -v s="$t0" -v e="$t1" -v hz="$HZ" \
	    'BEGIN { printf "%.2f", (b - a) / hz / (e - s) * 100 }')"
	put idle_pg_cpu "$(awk -v a="$g0" -v b="$g1" -v s="$t0" -v e="$t1" -v hz="$HZ" \
	    'BEGIN { printf "%.2f", (b - a) / hz / (e - s) * 100 }')"
	put deaths_b "$(worker_deaths "$l0")"
	echo "$(error_lines "$l0")" >"$W/errors-b"
	stop_kiln
}
