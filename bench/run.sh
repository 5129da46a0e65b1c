#!/usr/bin/env bash
#
# kiln benchmarks (`make bench`): starts its own PostgreSQL (Unix socket in a
# temp dir), a fast local OAuth upstream, kiln (./kiln as built, kore.conf)
# and nginx, measures every figure of bench/README.md on loopback, and prints
# one table. Throughput figures alternate their variants in rounds and report
# the median ratio of the rounds.
#
#   bash bench/run.sh                 full run (15-20 min)
#   BENCH_QUICK=1 bash bench/run.sh   smoke run (~1 min, small counts)
#
# Knobs (bench/README.md): BENCH_WORKERS, BENCH_ROUNDS, BENCH_DURATION,
# BENCH_CONNECTIONS, BENCH_THREADS, BENCH_SOURCES, BENCH_IDLE_SECONDS,
# BENCH_CAPACITY_SECONDS, BENCH_ACQUIRE_SECONDS, BENCH_PACE_MS,
# BENCH_PACE_THREADS,
# BENCH_PHASES, BENCH_KILN, BENCH_NGINX_TUNED, BENCH_KEEP, BENCH_OUT,
# BENCH_HOLD.
# Every process it starts is stopped on exit, by pid. Exit status: 0 when
# the table was printed (targets missed or not), 1 when the run broke,
# 2 when a tool is missing.

set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

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

say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# ----------------------------------------------------------------- tools

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

# ------------------------------------------------------- work dir, cleanup

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
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

free_port() {
	node -e 'const s = require("net").createServer();
	    s.listen(0, "127.0.0.1", () => { console.log(s.address().port);
	    s.close(); });'
}

# ------------------------------------------------------------ PostgreSQL

PG_SOCK=$W/pg
PG_PORT=$(free_port)

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

UP_PORT=""
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

K_PORT=$(free_port)
ADMIN_KEY=$(od -An -N24 -tx1 /dev/urandom | tr -d " \n")
MASTER_KEY=$(head -c 32 /dev/urandom | base64)
K_DB=kiln
K_SOURCES=""
K_NAME=b0000

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

NG_PORT=$(free_port)
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
WRK_N=0
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

# ================================================================ phases

say "work dir $W, ${WORKERS} workers, wrk -t$THREADS -c$CONNS -d${DUR}s," \
    "$ROUNDS round(s), $MANY sources$([ "$QUICK" = 1 ] && echo ', QUICK')"
start_pg
q postgres "CREATE DATABASE kiln" >/dev/null
q postgres "CREATE DATABASE kilncap" >/dev/null
start_upstream
say "PostgreSQL on $PG_SOCK:$PG_PORT, upstream on :$UP_PORT"

# ---- A: one source ----------------------------------------------------

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

# ---- B: many sources --------------------------------------------------

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

# ---- C: refresh capacity ----------------------------------------------

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

# BENCH_HOLD=1: set up phase A (PostgreSQL, upstream, kiln with one
# source, nginx), print where everything is, and wait (for profiling).
phase_a_setup
if [ "${BENCH_HOLD:-0}" = 1 ]; then
	say "holding: kiln pid $KILN_PID (workers $(kiln_workers | tr '\n' ' '))"
	say "  $TOKEN_URL"
	say "  $CONST_URL"
	say "  $NGINX_URL"
	say "  psql -h $PG_SOCK -p $PG_PORT -U postgres kiln"
	say "  kiln environment: . $W/kiln.env"
	say "  Ctrl-C (or kill $$) stops everything"
	while :; do sleep 1; done
fi
for ph in ${BENCH_PHASES:-A B C}; do
	case $ph in
	A) phase_a ;;
	B) phase_b ;;
	C) phase_c ;;
	*) die "BENCH_PHASES: unknown phase $ph" ;;
	esac
done

# ================================================================= table

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

{
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
} | tee "$W/table.txt"

if [ -n "${BENCH_OUT:-}" ]; then
	cp "$W/table.txt" "$BENCH_OUT"
	cp "$RES" "$BENCH_OUT.raw"
fi
exit 0
