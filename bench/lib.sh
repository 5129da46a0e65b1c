# bench/lib.sh: the helpers every phase of bench/run.sh shares (sourced,
# not run): knobs, tools, the work dir and its cleanup, PostgreSQL, the
# upstream, kiln, nginx, wrk rounds and the results file.
#
# Globals set here and read by the phases: the knobs (QUICK, ROUNDS, DUR,
# MANY, MID, ...), W (work dir), RES (results file), PG_*, UP_PORT, K_*
# (the kiln under test), KILN_PID, NG_PORT, BOOT_MS.

# bench_knobs: the BENCH_* variables (bench/README.md), QUICK or full.
bench_knobs() {
	QUICK=${BENCH_QUICK:-0}
	if [ "$QUICK" = 1 ]; then
		ROUNDS=${BENCH_ROUNDS:-1}
		DUR=${BENCH_DURATION:-2}
		MANY=${BENCH_SOURCES:-200}
		MID=$((MANY / 10))
		IDLE_S=${BENCH_IDLE_SECONDS:-3}
		CAP_N=$MANY
		CAP_LIFETIME=10
		CAP_S=${BENCH_CAPACITY_SECONDS:-8}
		PROP_N=20
		BOOTS=2
		ACQ_TIMEOUT=${BENCH_ACQUIRE_SECONDS:-20}
	else
		ROUNDS=${BENCH_ROUNDS:-5}
		DUR=${BENCH_DURATION:-10}
		MANY=${BENCH_SOURCES:-10000}
		MID=$((MANY / 10))
		IDLE_S=${BENCH_IDLE_SECONDS:-60}
		CAP_N=$MANY
		CAP_LIFETIME=60
		CAP_S=${BENCH_CAPACITY_SECONDS:-120}
		PROP_N=100
		BOOTS=5
		ACQ_TIMEOUT=${BENCH_ACQUIRE_SECONDS:-300}
	fi
	CONNS=${BENCH_CONNECTIONS:-64}
	PACE_MS=${BENCH_PACE_MS:-1}
	PACE_THREADS=${BENCH_PACE_THREADS:-1}
	THREADS=${BENCH_THREADS:-2}
	WORKERS=${BENCH_WORKERS:-$(awk '$1 == "workers" { print $2 }' kore.conf)}
	WORKERS=${WORKERS:-2}
	if [ "$MANY" -gt 10000 ] || [ "$MANY" -lt 10 ]; then
		echo "bench: BENCH_SOURCES must be 10..10000 (names are 4 digits)" >&2
		exit 2
	fi
}

say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# ----------------------------------------------------------------- tools

# bench_tools: every tool the run needs, or exit 2 saying what is missing.
bench_tools() {
	local need t v

	need=""
	for t in wrk nginx node runuser curl awk; do
		command -v "$t" >/dev/null 2>&1 || need="$need $t"
	done
	[ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx || NGINX=$(command -v nginx)
	PGBIN=${PG_BIN:-}
	if [ -z "$PGBIN" ]; then
		for v in 15 $(ls /usr/lib/postgresql 2>/dev/null | sort -rn); do
			if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then
				PGBIN=/usr/lib/postgresql/$v/bin
				break
			fi
		done
	fi
	[ -n "$PGBIN" ] || need="$need postgresql"
	KILN_BIN=${BENCH_KILN:-./kiln}
	[ -x "$KILN_BIN" ] || need="$need $KILN_BIN(make build)"
	if [ -n "$need" ]; then
		echo "bench: missing:$need (make deps-bench / make build)" >&2
		exit 2
	fi
}

# ------------------------------------------------------- work dir, cleanup

# bench_workdir: the temp dir, the private copy of the binary, the results
# file, and the cleanup of everything started, on exit.
bench_workdir() {
	W=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench.XXXXXX")
	chmod 755 "$W"
	# A copy of the binary, so that a rebuild during the run changes nothing.
	cp "$KILN_BIN" "$W/kiln" ||
	    { echo "bench: cannot copy $KILN_BIN" >&2; rm -rf "$W"; exit 2; }
	RES=$W/results
	: >"$RES"
	HZ=$(getconf CLK_TCK)
	PIDS=()			# everything we started, stopped in reverse order
	KILN_PID=""
	PG_DATA=$W/pg/data

	if [ "$(id -u)" = 0 ]; then
		AS_PG=(runuser -u postgres --)
	else
		AS_PG=()
	fi
	trap cleanup EXIT
	trap 'exit 130' INT TERM HUP
}

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Stop one pid: TERM, wait up to $2 s, then KILL.
stop_pid() {
	local pid=$1 wait=${2:-10} i
	pid_alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < wait * 20; i++)); do
		pid_alive "$pid" || return 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null
}

nginx_workers() {
	[ -f "$W/nginx/nginx.pid" ] &&
	    ps --ppid "$(cat "$W/nginx/nginx.pid")" -o pid= 2>/dev/null | tr -d ' '
}

kiln_workers() {
	[ -n "$KILN_PID" ] && ps --ppid "$KILN_PID" -o pid= 2>/dev/null |
	    tr -d ' '
}

# Every process running our private copy of the binary: ours, whatever
# happened to KILN_PID.
own_kilns() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/exe" 2>/dev/null)" = "$W/kiln" ] &&
		    echo "${p#/proc/}"
	done
}

stop_kiln() {
	local w p
	w=$(kiln_workers)
	[ -n "$KILN_PID" ] && stop_pid "$KILN_PID" 15
	for p in $w $(own_kilns); do
		stop_pid "$p" 2
	done
	KILN_PID=""
}

stop_pg() {
	local pid
	[ -f "$PG_DATA/postmaster.pid" ] || return 0
	pid=$(head -n 1 "$PG_DATA/postmaster.pid")
	"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 20 stop \
	    >/dev/null 2>&1 || stop_pid "$pid" 5
}

cleanup() {
	local i
	trap - EXIT INT TERM
	stop_kiln
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${PIDS[$i]}" 5
	done
	stop_pg
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		say "work dir kept: $W"
	else
		rm -rf "$W"
	fi
}

free_port() {
	node -e 'const s = require("net").createServer();
	    s.listen(0, "127.0.0.1", () => { console.log(s.address().port);
	    s.close(); });'
}

# ------------------------------------------------------------ PostgreSQL

start_pg() {
	mkdir -p "$PG_SOCK"
	[ "$(id -u)" = 0 ] && chown postgres: "$PG_SOCK"
	"${AS_PG[@]}" "$PGBIN/initdb" -D "$PG_DATA" -U postgres -A trust \
	    -E UTF8 --locale=C --no-instructions >"$W/initdb.log" 2>&1 ||
	    die "initdb: $(tail -n 5 "$W/initdb.log")"
	# Production defaults (fsync on); commit timestamps for propagation.
	cat >>"$PG_DATA/postgresql.conf" <<-EOF
		listen_addresses = ''
		unix_socket_directories = '$PG_SOCK'
		max_connections = 200
		track_commit_timestamp = on
		log_min_messages = warning
	EOF
	# BENCH_PG_CONF: more settings, one per line (e.g. to profile with
	# shared_preload_libraries = 'pg_stat_statements').
	[ -z "${BENCH_PG_CONF:-}" ] ||
	    printf '%s\n' "$BENCH_PG_CONF" >>"$PG_DATA/postgresql.conf"
	"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$PG_SOCK/postgres.log" \
	    -w -t 30 -o "-p $PG_PORT" start >/dev/null ||
	    die "PostgreSQL did not start: $(tail -n 5 "$PG_SOCK/postgres.log")"
}

# q DB SQL: one query, unaligned tuples only.
q() {
	"$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_SOCK" \
	    -p "$PG_PORT" -U postgres -d "$1" -c "$2"
}

pg_cpu_ticks() {
	local pm pids
	pm=$(head -n 1 "$PG_DATA/postmaster.pid")
	pids="$pm $(ps --ppid "$pm" -o pid= | tr -d ' ')"
	cpu_ticks $pids
}

# ------------------------------------------------------------- upstream

start_upstream() {
	node bench/upstream.js --port 0 --client demo:demo-secret \
	    --lifetime 3600 >"$W/upstream.out" 2>"$W/upstream.err" &
	PIDS+=($!)
	for _ in $(seq 100); do
		UP_PORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$W/upstream.out" \
		    2>/dev/null)
		[ -n "$UP_PORT" ] && return 0
		sleep 0.05
	done
	die "upstream did not start: $(cat "$W/upstream.err")"
}

# gen_sources FILE PREFIX COUNT LIFETIME: names PREFIX0000.. (5 chars, the
# size of the ceiling's "bench"), client_credentials against the upstream.
gen_sources() {
	awk -v prefix="$2" -v n="$3" -v url="http://127.0.0.1:$UP_PORT/token?lifetime=$4" '
	BEGIN {
		printf "{\"sources\":[\n"
		for (i = 0; i < n; i++)
			printf "%s{\"name\":\"%s%04d\",\"kind\":\"client_credentials\"," \
			    "\"token_url\":\"%s\",\"client_id\":\"demo\"," \
			    "\"client_secret\":\"demo-secret\",\"refresh_buffer\":300}\n",
			    (i ? "," : ""), prefix, i, url
		printf "]}\n"
	}' >"$1"
}

# ------------------------------------------------------------------ kiln


# start_kiln LABEL [PATH]: exec kiln, wait for the first 200 on PATH
# (default: K_NAME's current-token); sets KILN_PID and BOOT_MS (also in
# $W/boot-LABEL.json). Not in a subshell: KILN_PID must reach stop_kiln.
start_kiln() {
	local label=$1 path=${2:-/api/tokens/$K_NAME/current-token} out
	# The environment, also kept for profiling by hand:
	#   (. $W/kiln.env; perf record -g $W/kiln -f -c kore.conf)
	cat >"$W/kiln.env" <<-EOF
		unset KILN_WORKERS KILN_JWT_SECRET KILN_PUBLIC_ALLOW KILN_RATE_PUBLIC
		export KILN_BIND='127.0.0.1:$K_PORT' KILN_WORKERS='$WORKERS'
		export KILN_DATABASE_URL='host=$PG_SOCK port=$PG_PORT dbname=$K_DB user=postgres'
		export KILN_MASTER_KEY='$MASTER_KEY' KILN_SOURCES_FILE='$K_SOURCES'
		export KILN_ADMIN_KEY='$ADMIN_KEY' KILN_BENCH_ROUTE=1
		export KILN_PIDFILE='$W/kiln.pid' KILN_DRAIN_TIMEOUT=1
		export KILN_RATE_ADMIN=1000000 LOG_FORMAT=json LOG_LEVEL=warn
	EOF
	out=$(. "$W/kiln.env" && node bench/probe.js boot --port "$K_PORT" \
	    --path "$path" \
	    --pidfile "$W/kiln-spawn.pid" --log "$W/kiln.log" \
	    --timeout "${BOOT_TIMEOUT:-120000}" -- "$W/kiln" -f -c kore.conf)
	local rc=$?
	KILN_PID=$(cat "$W/kiln-spawn.pid" 2>/dev/null)
	echo "$out" >"$W/boot-$label.json"
	[ $rc = 0 ] || die "kiln did not serve $path: $out $(tail -n 5 "$W/kiln.log")"
	BOOT_MS=$(json_field boot_ms <"$W/boot-$label.json")
	# Every worker up (a fresh worker answers once its cache is loaded).
	for _ in $(seq 100); do
		[ "$(kiln_workers | wc -w)" -ge "$WORKERS" ] && break
		sleep 0.05
	done
}

# Workers Kore had to restart (crash, sandbox violation) in kiln.log since
# line $1; the lines are kept in $W/deaths.txt.
worker_deaths() {
	tail -n +"$(($1 + 1))" "$W/kiln.log" 2>/dev/null |
	    grep -E 'hdlr: .*gone|died from|restarting worker' >>"$W/deaths.txt"
	tail -n +"$(($1 + 1))" "$W/kiln.log" 2>/dev/null |
	    grep -c 'restarting worker'
}

# The syscalls of seccomp kills of our binary, from the kernel's audit
# lines (best effort: dmesg may not be readable).
sandbox_syscalls() {
	dmesg 2>/dev/null | grep "type=1326" | grep -F "exe=\"$W/kiln\"" |
	    sed -n 's/.* syscall=\([0-9]*\).*/\1/p' | sort -n | uniq -c |
	    awk '{ printf "%s%s x%s", (NR > 1 ? "," : ""), $2, $1 }'
}

# kiln's error-level log lines since line $1, by message: "N msg; ..."
error_lines() {
	tail -n +"$(($1 + 1))" "$W/kiln.log" 2>/dev/null |
	    grep '"level":"error"' | sed -n 's/.*"msg":"\([^"]*\)".*/\1/p' |
	    sort | uniq -c | sort -rn | head -n 3 |
	    awk '{ n = $1; $1 = ""; printf "%s%d x%s", (NR > 1 ? "; " : ""), n, $0 }'
}

log_lines() { wc -l <"$W/kiln.log" 2>/dev/null || echo 0; }

json_field() {
	sed -n "s/.*\"$1\":\([-0-9.]*\).*/\1/p" | head -n 1
}

# Sum of utime+stime (clock ticks) of pids.
cpu_ticks() {
	local t=0 p v
	for p in "$@"; do
		v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' \
		    "/proc/$p/stat" 2>/dev/null) || continue
		t=$((t + ${v:-0}))
	done
	echo "$t"
}

rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# Worker RSS in kB: "max avg" over the workers.
workers_rss() {
	local p
	for p in $(kiln_workers); do
		rss_kb "$p"
	done | awk '{ s += $1; if ($1 > m) m = $1 } END {
	    printf "%d %d\n", m, (NR ? s / NR : 0) }'
}

# wait_tokens DB PREFIX COUNT TIMEOUT_S: until COUNT sources named
# PREFIX* have a valid token; prints the seconds it took (or ">T(have/n)").
wait_tokens() {
	local db=$1 prefix=$2 n=$3 timeout=$4 t0 have
	t0=$(date +%s.%N)
	while :; do
		have=$(q "$db" "SELECT count(*) FROM tokens t JOIN token_sources s
		    ON s.id = t.source_id WHERE s.name LIKE '$prefix%'
		    AND t.expires_at > now()")
		[ "$have" -ge "$n" ] && break
		if awk -v a="$t0" -v b="$(date +%s.%N)" -v t="$timeout" \
		    'BEGIN { exit !(b - a > t) }'; then
			say "only $have of $n tokens after ${timeout} s; going on"
			echo ">${timeout}(${have}/${n})"
			return 1
		fi
		sleep 0.2
	done
	awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }'
}

# ----------------------------------------------------------------- nginx

start_nginx() {
	mkdir -p "$W/nginx/www" "$W/nginx/tmp"
	chmod -R a+rX "$W/nginx"
	# Debian's stock nginx.conf (sendfile, tcp_nopush, keepalive defaults,
	# no open_file_cache) with kiln's worker count and access_log off.
	# BENCH_NGINX_TUNED=1 adds open_file_cache and unlimited keep-alive
	# requests, which make nginx's static path faster.
	local tuned=""
	[ "${BENCH_NGINX_TUNED:-0}" = 1 ] && tuned="open_file_cache max=16 inactive=60s; open_file_cache_valid 60s; keepalive_requests 1000000;"
	cat >"$W/nginx/nginx.conf" <<-EOF
		worker_processes $WORKERS;
		daemon off;
		pid $W/nginx/nginx.pid;
		error_log $W/nginx/error.log warn;
		events { worker_connections 768; }
		http {
			sendfile on;
			tcp_nopush on;
			types_hash_max_size 2048;
			access_log off;
			$tuned
			client_body_temp_path $W/nginx/tmp;
			proxy_temp_path $W/nginx/tmp;
			fastcgi_temp_path $W/nginx/tmp;
			uwsgi_temp_path $W/nginx/tmp;
			scgi_temp_path $W/nginx/tmp;
			server {
				listen 127.0.0.1:$NG_PORT;
				root $W/nginx/www;
				location = /token.json {
					default_type "application/json; charset=utf-8";
					add_header Cache-Control no-store;
				}
			}
		}
	EOF
	"$NGINX" -c "$W/nginx/nginx.conf" -p "$W/nginx" \
	    >"$W/nginx/stdout" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$NG_PORT/token.json" \
		    2>/dev/null && return 0
		sleep 0.05
	done
	die "nginx did not start: $(cat "$W/nginx/error.log" "$W/nginx/stdout")"
}

# ------------------------------------------------------------------- wrk

# wrk_run TAG URL [LUA ARGS...]: one wrk run; prints "rps p50_ms p99_ms
# non2xx errors cpu_us_per_request busiest_worker_share" and keeps the
# output as $W/wrk/TAG.txt. The CPU columns come from /proc of the server's
# workers (kiln's, or nginx's for the nginx port): CPU time per request is
# steadier than req/s on a shared machine, and the share of the busiest
# worker shows how Kore's accept lock spread the connections.
wrk_run() {
	local tag=$1 url=$2 lua=${3:-} out pids p before after
	shift 3 2>/dev/null || shift $#
	mkdir -p "$W/wrk"
	WRK_N=$((WRK_N + 1))
	out="$W/wrk/$(printf '%03d' $WRK_N)-$tag.txt"
	case $url in
	*:"$NG_PORT"/*) pids=$(nginx_workers) ;;
	*) pids=$(kiln_workers) ;;
	esac
	before=$(for p in $pids; do cpu_ticks "$p"; done)
	if [ -n "$lua" ]; then
		wrk -t"${WRK_T:-$THREADS}" -c"$CONNS" -d"${WRK_D:-$DUR}s" --latency \
		    -s "$lua" "$url" -- "$@" >"$out" 2>&1
	else
		wrk -t"${WRK_T:-$THREADS}" -c"$CONNS" -d"${WRK_D:-$DUR}s" --latency \
		    "$url" >"$out" 2>&1
	fi
	after=$(for p in $pids; do cpu_ticks "$p"; done)
	paste <(echo "$before") <(echo "$after") >"$out.cpu"
	awk -v hz="$HZ" -v cpu="$out.cpu" '
	function ms(v) {
		if (v ~ /us$/) return v / 1000
		if (v ~ /ms$/) return v + 0
		if (v ~ /s$/) return v * 1000
		return v
	}
	/^Requests\/sec:/ { rps = $2 }
	/requests in / { n = $1 }
	/^ +50%/ { p50 = ms($2) }
	/^ +99%/ { p99 = ms($2) }
	/Non-2xx or 3xx responses:/ { bad = $NF }
	/Socket errors:/ { err = $0; gsub(/[^0-9 ]/, "", err); split(err, e, " ");
	    errs = e[1] + e[2] + e[3] + e[4] }
	END {
		while ((getline l < cpu) > 0) {
			split(l, f, " ")
			d = f[2] - f[1]; tot += d; if (d > top) top = d
		}
		printf "%s %.3f %.3f %d %d %.2f %.2f\n", rps, p50, p99, bad, errs,
		    (n > 0 ? tot / hz * 1e6 / n : 0), (tot > 0 ? top / tot : 0)
	}' "$out"
}

median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
	    if (NR % 2) print v[(NR + 1) / 2];
	    else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# rounds NAME|URL[|LUA|ARGS] ...: ROUNDS rounds, the order reversed every
# other round; per-variant lines "round <wrk_run columns>" go to
# $W/round-NAME.
rounds() {
	local r i spec name url rest lua args list
	for spec in "$@"; do
		: >"$W/round-${spec%%|*}"
	done
	for ((r = 1; r <= ROUNDS; r++)); do
		list=("$@")
		if ((r % 2 == 0)); then
			list=()
			for ((i = $# ; i >= 1; i--)); do
				list+=("${!i}")
			done
		fi
		for spec in "${list[@]}"; do
			IFS='|' read -r name url lua args <<<"$spec"
			# shellcheck disable=SC2086
			echo "$r $(wrk_run "$name" "$url" "$lua" $args)" \
			    >>"$W/round-$name"
		done
		say "  round $r/$ROUNDS: $(for spec in "$@"; do
		    n=${spec%%|*}; printf '%s=%s ' "$n" \
		    "$(awk -v r=$r '$1 == r { printf "%.0f", $2 }' "$W/round-$n")"
		    done)"
	done
}

# ratio A B [COL]: per-round A/B of column COL (2: req/s), median over
# the rounds.
ratio() {
	awk -v c="${3:-2}" 'NR == FNR { b[$1] = $c; next }
	    ($1 in b) && b[$1] > 0 { print $c / b[$1] }' \
	    "$W/round-$2" "$W/round-$1" | median
}

col_median() { awk -v c="$2" '{ print $c }' "$W/round-$1" | median; }
bad_total() { awk '{ s += $5 + $6 } END { print s + 0 }' "$W/round-$1"; }

sum_of() { echo "$@" | awk '{ for (i = 1; i <= NF; i++)
    if ($i ~ /^[0-9.]+$/) s += $i } END { print s + 0 }'; }
put() { echo "$1 $2" >>"$RES"; }
get() { awk -v k="$1" '$1 == k { v = $2 } END { print (v == "" ? "n/a" : v) }' "$RES"; }

# ---------------------------------------------------- ports and keys

# bench_ports: free ports for PostgreSQL, kiln and nginx, the keys, and
# the first kiln's database and source name.
bench_ports() {
	PG_SOCK=$W/pg
	PG_PORT=$(free_port)
	UP_PORT=""
	K_PORT=$(free_port)
	ADMIN_KEY=$(od -An -N24 -tx1 /dev/urandom | tr -d " \n")
	MASTER_KEY=$(head -c 32 /dev/urandom | base64)
	K_DB=kiln
	K_SOURCES=""
	K_NAME=b0000
	NG_PORT=$(free_port)
	WRK_N=0
}
