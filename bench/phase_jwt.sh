#!/usr/bin/env bash
# bench/phase_jwt.sh: what a signed client assertion costs a refresh.
# Standalone (bash bench/phase_jwt.sh), with bench/lib.sh's PostgreSQL and
# kiln, against oidc-provider (tests/upstream/oidc.js), which checks every
# secret and every assertion. Three sources of the same provider:
# client_secret_post (the baseline), private_key_jwt with a generated
# ES256 key and with a generated RS256 key (both registered by jwks_uri
# at kiln). N admin refreshes of each, in alternating order, one at a
# time; the figure is refresh_events.duration_ms (lease to answer), the
# median per source, and its ratio to the baseline's in the same run.
#
#   BENCH_JWT_N=40 bash bench/phase_jwt.sh

set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

. bench/lib.sh

N=${BENCH_JWT_N:-40}
SOURCES="sp es rs"

bench_knobs
bench_tools
bench_workdir
bench_ports

start_pg
q postgres "CREATE DATABASE kiln" >/dev/null

# The provider, told kiln's jwks.json before kiln starts.
jwks() { echo "http://127.0.0.1:$K_PORT/api/tokens/$1/jwks.json"; }
OIDC_UPSTREAM_CONFIG=$(cat <<-EOF
	{"ttl": 3600, "clients": [
	 {"client_id": "sp", "client_secret": "sp-secret-0123456789",
	  "token_endpoint_auth_method": "client_secret_post",
	  "grant_types": ["client_credentials"]},
	 {"client_id": "es", "token_endpoint_auth_method": "private_key_jwt",
	  "jwks_uri": "$(jwks es)", "grant_types": ["client_credentials"]},
	 {"client_id": "rs", "token_endpoint_auth_method": "private_key_jwt",
	  "jwks_uri": "$(jwks rs)", "grant_types": ["client_credentials"]}]}
EOF
)
export OIDC_UPSTREAM_CONFIG
node tests/upstream/oidc.js --port 0 >"$W/oidc.out" 2>"$W/oidc.err" &
PIDS+=($!)
for _ in $(seq 300); do
	UP_PORT=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$W/oidc.out" 2>/dev/null)
	[ -n "$UP_PORT" ] && break
	sleep 0.1
done
[ -n "$UP_PORT" ] || die "oidc.js did not start: $(cat "$W/oidc.err")"
TOKEN_URL=http://127.0.0.1:$UP_PORT/token

K_SOURCES=$W/sources-jwt.json
cat >"$K_SOURCES" <<-EOF
	{"sources": [
	 {"name": "sp", "kind": "client_credentials", "token_url": "$TOKEN_URL",
	  "client_id": "sp", "client_secret": "sp-secret-0123456789"},
	 {"name": "es", "kind": "client_credentials", "token_url": "$TOKEN_URL",
	  "client_id": "es", "auth_method": "private_key_jwt",
	  "private_key": {"generate": "ES256"}},
	 {"name": "rs", "kind": "client_credentials", "token_url": "$TOKEN_URL",
	  "client_id": "rs", "auth_method": "private_key_jwt",
	  "private_key": {"generate": "RS256"}}]}
EOF
K_NAME=sp
start_kiln jwt
for s in $SOURCES; do
	for _ in $(seq 200); do
		curl -fsS -o /dev/null \
		    "http://127.0.0.1:$K_PORT/api/tokens/$s/current-token" && break
		sleep 0.1
	done
done
say "provider on :$UP_PORT, kiln on :$K_PORT, $N refreshes per source"

events() {
	q kiln "SELECT count(*) FROM refresh_events e JOIN token_sources s
	    ON s.id = e.source_id WHERE s.name = '$1' AND e.trigger = 'admin'"
}

# One refresh at a time, so the sources never share the machine.
refresh_one() {
	local before
	before=$(events "$1")
	curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $ADMIN_KEY" \
	    "http://127.0.0.1:$K_PORT/api/tokens/$1/refresh" ||
	    die "refresh $1 refused"
	for _ in $(seq 500); do
		[ "$(events "$1")" -gt "$before" ] && return 0
		sleep 0.02
	done
	die "refresh of $1 not recorded"
}

for ((i = 1; i <= N; i++)); do
	if ((i % 2)); then order="sp es rs"; else order="rs es sp"; fi
	for s in $order; do
		refresh_one "$s"
	done
done

stat() {
	q kiln "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY
	    e.duration_ms), count(*) FILTER (WHERE e.outcome <> 'success')
	    FROM refresh_events e JOIN token_sources s ON s.id = e.source_id
	    WHERE s.name = '$1' AND e.trigger = 'admin'" | tr '|' ' '
}

read -r base_ms base_fail <<<"$(stat sp)"
printf '\n| source | method | refreshes | median duration_ms | vs client_secret_post | failures |\n'
printf '| --- | --- | --- | --- | --- | --- |\n'
for s in $SOURCES; do
	read -r ms fail <<<"$(stat "$s")"
	case $s in
	sp) m=client_secret_post ;;
	es) m="private_key_jwt ES256" ;;
	rs) m="private_key_jwt RS256" ;;
	esac
	printf '| %s | %s | %s | %s | %s | %s |\n' "$s" "$m" "$N" "$ms" \
	    "$(awk -v a="$ms" -v b="$base_ms" 'BEGIN { if (b > 0)
	    printf "%.2fx", a / b; else print "n/a" }')" "$fail"
done
