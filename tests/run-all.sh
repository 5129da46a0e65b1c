#!/usr/bin/env bash
#
# Every suite of `make test`, then one summary line: N passed, N failed.
# SAN=1 runs the unit tests under ASan+UBSan (the kiln binary is expected
# to be the asan flavor then: `make asan`).

set -uo pipefail

cd "$(dirname "$0")/.."

out=$(mktemp -d "${TMPDIR:-/tmp}/kiln-test.XXXXXX")
trap 'rm -rf "$out"' EXIT

passed=0
failed=0
skipped=0

# cmocka units: the Makefile ends with "unit: N passed, N failed".
make --no-print-directory -C tests/unit check SAN="${SAN:-0}" 2>&1 |
    tee "$out/unit.log"
line=$(grep -E '^unit: [0-9]+ passed, [0-9]+ failed' "$out/unit.log" |
    tail -n 1)
if [ -z "$line" ]; then
	echo "run-all: unit tests did not report" >&2
	failed=$((failed + 1))
else
	passed=$((passed + $(echo "$line" | sed -E 's/unit: ([0-9]+) passed.*/\1/')))
	failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
fi

# The layers of src/kiln.h, from the objects just built: one check.
if python3 tests/layers.py >"$out/layers.log" 2>&1; then
	tail -n 1 "$out/layers.log"
	passed=$((passed + 1))
else
	grep -v '^layers: note' "$out/layers.log" >&2
	echo "layers: FAILED (python3 tests/layers.py)" >&2
	failed=$((failed + 1))
fi

# libFuzzer smoke of the parsers: one check per harness.
make --no-print-directory -C tests/fuzz smoke 2>&1 | tee "$out/fuzz.log"
line=$(grep -E '^fuzz: [0-9]+ harnesses' "$out/fuzz.log" | tail -n 1)
if [ -z "$line" ]; then
	echo "run-all: fuzz smoke did not report" >&2
	failed=$((failed + 1))
else
	h=$(echo "$line" | sed -E 's/fuzz: ([0-9]+) harnesses.*/\1/')
	c=$(echo "$line" | sed -E 's/.* ([0-9]+) crashes.*/\1/')
	passed=$((passed + h - c))
	failed=$((failed + c))
fi

# Under the sanitizers a report aborts a worker, which Kore restarts:
# make every report count.
if [ "${SAN:-0}" = 1 ]; then
	export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	touch "$out/start"
fi

# node:test suites: integration (in folders by surface) and browser,
# three files at a time, then the few that measure latency, alone
# (spec reporter: "ℹ pass N" ...). Helpers (lib/), logs (tmp/) and
# screenshots (artifacts/) hold no tests.
serial="tests/integration/prod/pg_blackhole.test.js
tests/integration/prod/instances.test.js"
for f in $serial; do
	if [ ! -f "$f" ]; then
		echo "run-all: $f not found" >&2
		failed=$((failed + 1))
	fi
done
files=$(find tests/integration tests/browser \( -name lib -o -name tmp -o \
    -name artifacts \) -prune -o -type f -name '*.test.js' -print | sort |
    grep -vxF "$serial")
# shellcheck disable=SC2086
bash tests/run-integration.sh $files 2>&1 | tee "$out/it.log"
# shellcheck disable=SC2086
KILN_IT_CONCURRENCY=1 bash tests/run-integration.sh $serial 2>&1 |
    tee -a "$out/it.log"
count() {
	grep -aE "^ℹ $1 [0-9]+" "$out/it.log" |
	    sed -E "s/^ℹ $1 ([0-9]+).*/\1/" | awk '{ n += $1 } END {
	    if (NR) print n }'
}
p=$(count pass)
f=$(count fail)
s=$(count skipped)
if [ -z "$p" ] || [ -z "$f" ]; then
	echo "run-all: integration tests did not report" >&2
	failed=$((failed + 1))
else
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + ${s:-0}))
fi

# The bench scripts, kept working (not a measurement): a BENCH_QUICK run
# must print its table with no worker restarted, no error log line and
# no failed request. Not under the sanitizers (it runs ./kiln as built).
if [ "${SAN:-0}" != 1 ]; then
	if BENCH_QUICK=1 bash bench/run.sh >"$out/bench.log" 2>&1 &&
	    grep -q '^| kiln workers restarted by Kore .*| met |$' \
	    "$out/bench.log" &&
	    grep -q '^| non-2xx answers or socket errors .*| met |$' \
	    "$out/bench.log" &&
	    ! grep -qE '^\| kiln error log lines, phase [ABC] \| [^ |]' \
	    "$out/bench.log"; then
		echo "bench smoke: ok (BENCH_QUICK=1 bash bench/run.sh)"
		passed=$((passed + 1))
	else
		echo "bench smoke: FAILED" >&2
		tail -n 60 "$out/bench.log" >&2
		failed=$((failed + 1))
	fi
fi

if [ "${SAN:-0}" = 1 ]; then
	reports=$(find tests/integration/tmp -name kiln.log -newer "$out/start" \
	    -exec grep -lE "runtime error|AddressSanitizer|LeakSanitizer" {} + |
	    wc -l)
	echo "sanitizers: $reports kiln logs with a report"
	if [ "$reports" -gt 0 ]; then
		find tests/integration/tmp -name kiln.log -newer "$out/start" \
		    -exec grep -hE -A5 "runtime error|AddressSanitizer" {} + |
		    head -40
		failed=$((failed + 1))
	fi
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
