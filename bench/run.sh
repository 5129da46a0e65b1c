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
#
# The helpers are in bench/lib.sh, each phase in bench/phase_[abc].sh, the
# table in bench/table.sh.

set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

. bench/lib.sh
. bench/phase_a.sh
. bench/phase_b.sh
. bench/phase_c.sh
. bench/table.sh

bench_knobs
bench_tools
bench_workdir
bench_ports

say "work dir $W, ${WORKERS} workers, wrk -t$THREADS -c$CONNS -d${DUR}s," \
    "$ROUNDS round(s), $MANY sources$([ "$QUICK" = 1 ] && echo ', QUICK')"
start_pg
q postgres "CREATE DATABASE kiln" >/dev/null
q postgres "CREATE DATABASE kilncap" >/dev/null
start_upstream
say "PostgreSQL on $PG_SOCK:$PG_PORT, upstream on :$UP_PORT"

phase_a_setup
phase_a_hold
for ph in ${BENCH_PHASES:-A B C}; do
	case $ph in
	A) phase_a ;;
	B) phase_b ;;
	C) phase_c ;;
	*) die "BENCH_PHASES: unknown phase $ph" ;;
	esac
done

bench_table | tee "$W/table.txt"

if [ -n "${BENCH_OUT:-}" ]; then
	cp "$W/table.txt" "$BENCH_OUT"
	cp "$RES" "$BENCH_OUT.raw"
fi
exit 0
