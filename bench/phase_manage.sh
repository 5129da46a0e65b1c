#!/usr/bin/env bash
#
# The dashboard's pages to manage sources and keys with many sources
# (BENCH_SOURCES, default 10000): medians and ratios against GET
# /api/tokens/{name} measured in the same run. Uses the integration
# harness (its own PostgreSQL and kiln, stopped at the end); ./kiln as
# built. Not part of make bench's table.
#
#	bash bench/phase_manage.sh

set -euo pipefail
cd "$(dirname "$0")/.."
KILN_IT_CONCURRENCY=1 bash tests/run-integration.sh bench/manage.bench.js |
    grep -E '^\| |^ℹ (pass|fail)'
