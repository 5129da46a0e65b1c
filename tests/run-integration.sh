#!/usr/bin/env bash
#
# Run kiln's black-box integration tests (node:test) and make sure nothing
# they started is left running: every process the harness spawns is
# written down under $KILN_IT_RUN_DIR/pids, and every PostgreSQL cluster
# lives under $KILN_IT_RUN_DIR.
#
#   tests/run-integration.sh [test files...]
#       (default: every *.test.js below tests/integration, in folders
#       by surface; lib/ and tmp/ hold none)
#
# KILN_IT_CONCURRENCY sets how many test files run at once (default 3).

set -uo pipefail

cd "$(dirname "$0")/.."

if [ ! -d node_modules/@node-oauth/oauth2-server ]; then
	npm ci --no-audit --no-fund || exit 1
fi

KILN_IT_RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kiln-it.XXXXXX")
export KILN_IT_RUN_DIR
chmod 711 "$KILN_IT_RUN_DIR"
mkdir -p tests/integration/tmp
# Per-test dirs (kiln.log, sources.json) of runs more than an hour old.
find tests/integration/tmp -mindepth 1 -maxdepth 1 -type d \
    -name '*-??????' -mmin +60 -exec rm -rf {} + 2>/dev/null

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

reap() {
	local f pid pgid start now cmd data
	for f in "$KILN_IT_RUN_DIR"/pids/*; do
		[ -e "$f" ] || continue
		pid=$(basename "$f")
		start=$(sed -n 's/.*"start":"\([0-9]*\)".*/\1/p' "$f")
		pgid=$(sed -n 's/.*"pgid":\([0-9]*\).*/\1/p' "$f")
		now=$(awk '{ sub(/.*\) /, ""); split($0, a, " ");
		    print a[20] }' "/proc/$pid/stat" 2>/dev/null || true)
		if [ -n "$now" ] && [ "$now" = "$start" ]; then
			cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)
			echo "run-integration: killing leftover $pid ($cmd)" >&2
			kill -KILL -- "-${pgid:-$pid}" 2>/dev/null ||
			    kill -KILL "$pid" 2>/dev/null || true
		elif [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null &&
		    [ -z "$now" ]; then
			# The leader is gone but its group lives on.
			echo "run-integration: killing leftover group $pgid" >&2
			kill -KILL -- "-$pgid" 2>/dev/null || true
		fi
		rm -f "$f"
	done
	for data in "$KILN_IT_RUN_DIR"/pg-*/data; do
		[ -f "$data/postmaster.pid" ] || continue
		echo "run-integration: stopping leftover cluster $data" >&2
		if [ "$(id -u)" = 0 ]; then
			runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" \
			    -m immediate -w -t 10 stop >/dev/null 2>&1
		else
			"$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 10 \
			    stop >/dev/null 2>&1
		fi
		pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null)
		[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	done
	rm -rf "$KILN_IT_RUN_DIR"
}
trap reap EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$#" -eq 0 ]; then
	# shellcheck disable=SC2046
	set -- $(find tests/integration \( -name lib -o -name tmp \) -prune \
	    -o -type f -name '*.test.js' -print | sort)
fi

node --test --test-reporter=spec \
    --test-concurrency="${KILN_IT_CONCURRENCY:-3}" \
    --test-timeout=300000 "$@"
