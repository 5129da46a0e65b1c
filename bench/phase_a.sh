# bench/phase_a.sh: phase A, one source (sourced by bench/run.sh).
# Throughput and latency of current-token against the framework ceiling
# and nginx, random names over one source, refresh propagation, boot to
# first served token.

phase_a_setup() {
	K_SOURCES=$W/sources-1.json
	gen_sources "$K_SOURCES" b 1 3600
	say "A: kiln with 1 source"
	start_kiln first
	TOKEN_URL="http://127.0.0.1:$K_PORT/api/tokens/$K_NAME/current-token"
	CONST_URL="http://127.0.0.1:$K_PORT/bench/constant"
	NGINX_URL="http://127.0.0.1:$NG_PORT/token.json"

	# nginx serves the bytes of a real token answer.
	mkdir -p "$W/nginx/www"
	curl -fsS "$TOKEN_URL" >"$W/nginx/www/token.json" ||
	    die "no token answer from kiln"
	start_nginx
	for u in "$TOKEN_URL" "$CONST_URL" "$NGINX_URL"; do
		curl -sS -D - -o "$W/body" "$u" >"$W/head"
		echo "$(wc -c <"$W/body") $(wc -c <"$W/head")"
	done >"$W/sizes"
	put body_token "$(sed -n 1p "$W/sizes" | cut -d' ' -f1)"
	put body_const "$(sed -n 2p "$W/sizes" | cut -d' ' -f1)"
	put body_nginx "$(sed -n 3p "$W/sizes" | cut -d' ' -f1)"
	put head_token "$(sed -n 1p "$W/sizes" | cut -d' ' -f2)"
	put head_const "$(sed -n 2p "$W/sizes" | cut -d' ' -f2)"
	put head_nginx "$(sed -n 3p "$W/sizes" | cut -d' ' -f2)"
}

phase_a() {
	local l0
	l0=$(log_lines)
	say "A: warm-up"
	WRK_D=1 wrk_run warm "$TOKEN_URL" >/dev/null
	WRK_D=1 wrk_run warm "$CONST_URL" >/dev/null
	WRK_D=1 wrk_run warm "$NGINX_URL" >/dev/null

	say "A: throughput current-token / constant route / nginx static"
	rounds "token|$TOKEN_URL" "const|$CONST_URL" "nginx|$NGINX_URL"
	put rps_token "$(col_median token 2)"
	put rps_const "$(col_median const 2)"
	put rps_nginx "$(col_median nginx 2)"
	put ratio_const "$(ratio token const)"
	put ratio_nginx "$(ratio token nginx)"
	put p50_token "$(col_median token 3)"
	put p99_token "$(col_median token 4)"
	put p50_const "$(col_median const 3)"
	put p99_const "$(col_median const 4)"
	put p50_nginx "$(col_median nginx 3)"
	put p99_nginx "$(col_median nginx 4)"
	put cpu_token "$(col_median token 7)"
	put cpu_const "$(col_median const 7)"
	put cpu_nginx "$(col_median nginx 7)"
	put cpu_ratio_const "$(ratio token const 7)"
	put cpu_ratio_nginx "$(ratio token nginx 7)"
	put share_token "$(col_median token 8)"
	put share_const "$(col_median const 8)"
	put share_nginx "$(col_median nginx 8)"
	put bad_a "$(( $(bad_total token) + $(bad_total const) + $(bad_total nginx) ))"

	# Saturated, 64 connections queue behind each other and the 2 shared
	# cores' time slices set the tail for every server alike; paced, the
	# same connections measure the time to an answer. One wrk thread
	# (BENCH_PACE_THREADS), so that the load generator does not take its
	# time slices from the server's core as a second thread would.
	say "A: latency at a paced load (${PACE_MS} ms pause per connection," \
	    "wrk -t$PACE_THREADS)"
	WRK_T=$PACE_THREADS rounds "ptoken|$TOKEN_URL|bench/paced.lua|$PACE_MS" \
	    "pconst|$CONST_URL|bench/paced.lua|$PACE_MS" \
	    "pnginx|$NGINX_URL|bench/paced.lua|$PACE_MS"
	for v in token const nginx; do
		put "prps_$v" "$(col_median "p$v" 2)"
		put "pp50_$v" "$(col_median "p$v" 3)"
		put "pp99_$v" "$(col_median "p$v" 4)"
	done
	put bad_a "$(( $(get bad_a) + $(bad_total ptoken) + $(bad_total pconst) + $(bad_total pnginx) ))"

	say "A: random names, 1 source"
	WRK_D=1 wrk_run warm "http://127.0.0.1:$K_PORT" bench/random.lua b 1 >/dev/null
	set -- $(wrk_run rand1 "http://127.0.0.1:$K_PORT" bench/random.lua b 1)
	put rps_rand1_only "$1"
	put rss_1 "$(workers_rss | cut -d' ' -f1)"

	say "A: refresh propagation, $PROP_N samples"
	node bench/probe.js propagate --port "$K_PORT" --name "$K_NAME" \
	    --workers "$WORKERS" --admin-key "$ADMIN_KEY" --samples "$PROP_N" \
	    --out "$W/prop.json" >/dev/null || die "propagation probe failed"
	# commit time of each generation: the event row is written by the same
	# statement as the token.
	q kiln "SELECT e.generation, kiln_ms(pg_xact_commit_timestamp(e.xmin))
	    FROM refresh_events e JOIN token_sources s ON s.id = e.source_id
	    WHERE s.name = '$K_NAME' AND e.outcome = 'success'" | tr '|' ' ' \
	    >"$W/commits"
	node -e '
		const fs = require("fs");
		const [prop, commits] = process.argv.slice(1);
		const c = new Map(fs.readFileSync(commits, "utf8").trim().split("\n")
		    .map((l) => l.split(" ").map(Number)));
		const d = [];
		let missing = 0;
		for (const s of JSON.parse(fs.readFileSync(prop, "utf8"))) {
			const t = c.get(s.generation);
			if (t === undefined || s.seen_ms.some((x) => x === null)) {
				missing++;
				continue;
			}
			d.push(Math.max(...s.seen_ms) - t);
		}
		d.sort((a, b) => a - b);
		const p = (f) => d.length ? d[Math.min(d.length - 1,
		    Math.ceil(f * d.length) - 1)] : NaN;
		console.log(`${p(0.5).toFixed(1)} ${p(0.99).toFixed(1)} ` +
		    `${d.length ? d[d.length - 1].toFixed(1) : NaN} ${d.length} ${missing}`);
	' "$W/prop.json" "$W/commits" >"$W/prop.txt" || die "propagation stats"
	read -r pp50 pp99 pmax pn pmiss <"$W/prop.txt"
	put prop_p50 "$pp50"
	put prop_p99 "$pp99"
	put prop_max "$pmax"
	put prop_n "$pn"
	put prop_missing "$pmiss"

	say "A: boot to first served token, $BOOTS restarts"
	: >"$W/boots"
	for ((i = 1; i <= BOOTS; i++)); do
		stop_kiln
		start_kiln "restart$i"
		echo "$BOOT_MS" >>"$W/boots"
	done
	put deaths_a "$(worker_deaths "$l0")"
	echo "$(error_lines "$l0")" >"$W/errors-a"
	put boot_med "$(median <"$W/boots")"
	put boot_max "$(sort -g "$W/boots" | tail -n 1)"
}

# phase_a_hold: with BENCH_HOLD=1, once phase A is set up (PostgreSQL,
# upstream, kiln with one source, nginx), print where everything is and
# wait (for profiling by hand); otherwise return at once.
phase_a_hold() {
	[ "${BENCH_HOLD:-0}" = 1 ] || return 0
	say "holding: kiln pid $KILN_PID (workers $(kiln_workers | tr '\n' ' '))"
	say "  $TOKEN_URL"
	say "  $CONST_URL"
	say "  $NGINX_URL"
	say "  psql -h $PG_SOCK -p $PG_PORT -U postgres kiln"
	say "  kiln environment: . $W/kiln.env"
	say "  Ctrl-C (or kill $$) stops everything"
	while :; do sleep 1; done
}
