#!/usr/bin/env bash
#
# The embedded default behind `make run` (DESIGN.md, "Embedded default").
#
# With KILN_DATABASE_URL set, this only runs kiln with the environment as
# given. Without it, it:
#   - creates (once) and starts a private PostgreSQL cluster under
#     $KILN_STATE_DIR/pg (default .kiln/pg), reachable only through a Unix
#     socket in $KILN_STATE_DIR/run, and a database "kiln";
#   - generates $KILN_STATE_DIR/master.key (32 random bytes, base64, 0600)
#     once, unless KILN_MASTER_KEY or KILN_MASTER_KEY_FILE is set;
#   - starts the demo identity provider (tests/upstream/oauth.js) on a free
#     loopback port and writes $KILN_STATE_DIR/sources.json with one demo
#     source "demo" (client_credentials), unless KILN_SOURCES_FILE is set;
#   - runs ./kiln -f -c kore.conf in the foreground, and on exit (Ctrl-C,
#     SIGTERM, or kiln ending) stops kiln, the IdP and the cluster.
#
# Environment: KILN_BIND (default 127.0.0.1:8888), KILN_STATE_DIR,
# KILN_BIN (default ./kiln), KILN_CONF (default kore.conf), PG_BIN,
# KILN_DEMO_SECRET (default demo-secret).

set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
KILN_BIN=${KILN_BIN:-./kiln}
KILN_CONF=${KILN_CONF:-kore.conf}

say() { printf 'kiln: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ -x "$KILN_BIN" ] || die "$KILN_BIN not found: run 'make build' first"

if [ -n "${KILN_DATABASE_URL:-}" ]; then
	exec "$KILN_BIN" -f -c "$KILN_CONF"
fi

# ------------------------------------------------------------------ setup

STATE=${KILN_STATE_DIR:-$REPO/.kiln}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
PGDATA_DIR=$STATE/pg
RUN=$STATE/run
PGPORT_EMB=5432
export KILN_BIND=${KILN_BIND:-127.0.0.1:8888}

if [ -z "${PG_BIN:-}" ]; then
	if [ -x /usr/lib/postgresql/15/bin/postgres ]; then
		PG_BIN=/usr/lib/postgresql/15/bin
	else
		PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null |
		    sort -V | tail -n 1)
	fi
fi
[ -x "$PG_BIN/postgres" ] ||
	die "PostgreSQL server not found (apt-get install postgresql-15)"

SOCK=$RUN/.s.PGSQL.$PGPORT_EMB
[ "${#SOCK}" -lt 100 ] ||
	die "state dir path too long for a Unix socket: $SOCK"

if [ "$(id -u)" = 0 ]; then
	PG_USER=postgres
	id postgres >/dev/null 2>&1 || die "no postgres user"
	as_pg() { runuser -u postgres -- "$@"; }
	# postgres must be able to reach its data and socket dirs.
	chmod 711 "$STATE"
else
	PG_USER=$(id -un)
	as_pg() { "$@"; }
fi

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# A previous run killed hard may have left its IdP and cluster running.
if [ -s "$STATE/embedded.pid" ]; then
	old=$(cat "$STATE/embedded.pid")
	if alive "$old" && [ "$old" != $$ ] &&
	    tr '\0' ' ' < "/proc/$old/cmdline" 2>/dev/null |
	    grep -q embedded.sh; then
		die "another kiln run (pid $old) is using $STATE"
	fi
fi
echo $$ > "$STATE/embedded.pid"
if [ -s "$STATE/idp.pid" ]; then
	old=$(cat "$STATE/idp.pid")
	if alive "$old" && tr '\0' ' ' < "/proc/$old/cmdline" 2>/dev/null |
	    grep -q 'upstream/oauth.js'; then
		kill "$old" 2>/dev/null || true
	fi
	rm -f "$STATE/idp.pid"
fi

KPID=
IDP_PID=
PG_STARTED=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if alive "$KPID"; then
		kill -TERM "$KPID" 2>/dev/null || true
		for _ in $(seq 1 100); do
			alive "$KPID" || break
			sleep 0.1
		done
		alive "$KPID" && kill -KILL "$KPID" 2>/dev/null
		wait "$KPID" 2>/dev/null || true
	fi
	if alive "$IDP_PID"; then
		kill -TERM "$IDP_PID" 2>/dev/null || true
		wait "$IDP_PID" 2>/dev/null || true
	fi
	rm -f "$STATE/idp.pid"
	if [ -n "$PG_STARTED" ]; then
		as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 30 \
		    stop >/dev/null 2>&1 ||
		    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m immediate \
		    stop >/dev/null 2>&1 || true
	fi
	rm -f "$STATE/embedded.pid"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ PostgreSQL

mkdir -p "$RUN"
if [ ! -s "$PGDATA_DIR/PG_VERSION" ]; then
	say "creating the PostgreSQL cluster in $PGDATA_DIR"
	rm -rf "$PGDATA_DIR"
	mkdir -p "$PGDATA_DIR"
	if [ "$(id -u)" = 0 ]; then
		chown postgres:postgres "$PGDATA_DIR"
	fi
	chmod 700 "$PGDATA_DIR"
	(cd "$STATE" && as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" \
	    -U "$PG_USER" -A trust -E UTF8 --locale=C --no-instructions \
	    >"$STATE/initdb.log" 2>&1) ||
		die "initdb failed, see $STATE/initdb.log"
	cat >> "$PGDATA_DIR/postgresql.conf" <<EOF

# kiln embedded default: Unix socket only
listen_addresses = ''
port = $PGPORT_EMB
unix_socket_directories = '$RUN'
unix_socket_permissions = 0700
EOF
fi
if [ "$(id -u)" = 0 ]; then
	chown postgres:postgres "$RUN"
fi
chmod 700 "$RUN"

if as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
	say "stopping a cluster left running by an earlier run"
	as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 30 stop \
	    >/dev/null 2>&1 || true
fi
PG_STARTED=1
(cd "$STATE" && as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" \
    -l "$PGDATA_DIR/postgres.log" -w -t 60 start >/dev/null) ||
	die "PostgreSQL did not start, see $PGDATA_DIR/postgres.log"

psql_emb() {
	(cd "$STATE" && as_pg "$PG_BIN/psql" -X -q -h "$RUN" \
	    -p "$PGPORT_EMB" -U "$PG_USER" "$@")
}
if [ "$(psql_emb -d postgres -Atc \
    "SELECT 1 FROM pg_database WHERE datname = 'kiln'")" != 1 ]; then
	psql_emb -d postgres -c 'CREATE DATABASE kiln' >/dev/null
fi
export KILN_DATABASE_URL="host='$RUN' port=$PGPORT_EMB dbname=kiln user=$PG_USER"

# ------------------------------------------------------------ master key

if [ -z "${KILN_MASTER_KEY:-}" ] && [ -z "${KILN_MASTER_KEY_FILE:-}" ]; then
	if [ ! -s "$STATE/master.key" ]; then
		(umask 077 && head -c 32 /dev/urandom | base64 \
		    > "$STATE/master.key.tmp" &&
		    mv "$STATE/master.key.tmp" "$STATE/master.key")
		say "generated $STATE/master.key"
	fi
	chmod 600 "$STATE/master.key"
	export KILN_MASTER_KEY_FILE=$STATE/master.key
fi

# ------------------------------------------- admin key (dashboard, API)

if [ -z "${KILN_ADMIN_KEY:-}" ]; then
	if [ ! -s "$STATE/admin.key" ]; then
		(umask 077 && printf 'kiln_%s\n' "$(head -c 32 /dev/urandom |
		    base64 | tr '+/' '-_' | tr -d '=\n')" \
		    > "$STATE/admin.key.tmp" &&
		    mv "$STATE/admin.key.tmp" "$STATE/admin.key")
		say "generated $STATE/admin.key"
	fi
	chmod 600 "$STATE/admin.key"
	KILN_ADMIN_KEY=$(cat "$STATE/admin.key")
	export KILN_ADMIN_KEY
	ADMIN_KEY_FILE=$STATE/admin.key
fi

# ------------------------------------------------------- demo IdP, source

if [ -z "${KILN_SOURCES_FILE:-}" ]; then
	if [ ! -d node_modules/@node-oauth/oauth2-server ]; then
		say "installing test dependencies (npm ci)"
		npm ci --no-audit --no-fund >/dev/null
	fi
	export KILN_DEMO_SECRET=${KILN_DEMO_SECRET:-demo-secret}
	: > "$STATE/idp.out"
	node tests/upstream/oauth.js --port 0 \
	    --client "demo:$KILN_DEMO_SECRET:client_credentials" \
	    --lifetime 120 >"$STATE/idp.out" 2>"$STATE/idp.log" &
	IDP_PID=$!
	echo "$IDP_PID" > "$STATE/idp.pid"
	IDP_PORT=
	for _ in $(seq 1 100); do
		IDP_PORT=$(sed -n 's/.*"ready":true,"port":\([0-9]*\).*/\1/p' \
		    "$STATE/idp.out" | head -n 1)
		[ -n "$IDP_PORT" ] && break
		alive "$IDP_PID" || die "demo IdP failed: $(cat "$STATE/idp.log")"
		sleep 0.1
	done
	[ -n "$IDP_PORT" ] || die "demo IdP did not start"
	cat > "$STATE/sources.json" <<EOF
{
  "sources": [
    {
      "name": "demo",
      "kind": "client_credentials",
      "token_url": "http://127.0.0.1:$IDP_PORT/token",
      "client_id": "demo",
      "client_secret": {"env": "KILN_DEMO_SECRET"},
      "auth_method": "client_secret_post",
      "refresh_buffer": 30
    }
  ]
}
EOF
	export KILN_SOURCES_FILE=$STATE/sources.json
	say "demo identity provider on http://127.0.0.1:$IDP_PORT (client demo)"
fi

# ------------------------------------------------------------------ kiln

HOSTPORT=$KILN_BIND
case "$HOSTPORT" in
0.0.0.0:*) HOSTPORT="127.0.0.1:${HOSTPORT##*:}" ;;
esac
say "database  $KILN_DATABASE_URL"
say "dashboard http://$HOSTPORT/dashboard"
if [ -n "$IDP_PID" ]; then
	say "token     http://$HOSTPORT/api/tokens/demo/current-token"
fi
say "health    http://$HOSTPORT/health"
if [ -n "${ADMIN_KEY_FILE:-}" ]; then
	say "admin key in $ADMIN_KEY_FILE (dashboard login, admin API)"
fi

"$KILN_BIN" -f -c "$KILN_CONF" &
KPID=$!
set +e
wait "$KPID"
rc=$?
set -e
KPID=
exit "$rc"
