#!/usr/bin/env bash
# Runs a command against PRIVATE PostgreSQL and Redis servers: fresh ones, on
# free ports, in a temporary directory, stopped and removed when the command
# ends (however it ends). A server that happens to be running is never used.
#
#   deploy/ci/with-private-servers.sh .venv/bin/python -m pytest -q
#
# The command sees DATABASE_URL and REDIS_URL pointing at them. Installs the
# Debian packages `postgresql` and `redis-server` when missing (as root).
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi

install_missing() {
    local packages=()
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || packages+=(postgresql)
    command -v redis-server >/dev/null || packages+=(redis-server)
    if [ ${#packages[@]} -gt 0 ]; then
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

install_missing
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
WORK_DIR=$(mktemp -d /tmp/private-servers.XXXXXX)
chmod 755 "$WORK_DIR"
PG_PORT=$(free_port)
REDIS_PORT=$(free_port)

# PostgreSQL refuses to run as root: its files belong to the postgres user.
if [ "$(id -u)" = 0 ]; then
    mkdir "$WORK_DIR/pg"
    chown postgres: "$WORK_DIR/pg"
    as_pg() { runuser -u postgres -- "$@"; }
    PG_USER=postgres
else
    as_pg() { "$@"; }
    PG_USER=$(id -un)
fi

PG_STARTED=
REDIS_STARTED=
stop_servers() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$REDIS_STARTED" ]; then
        kill "$(cat "$WORK_DIR/redis.pid")" 2>/dev/null || true
        echo "private-servers: Redis on port $REDIS_PORT stopped"
    fi
    if [ -n "$PG_STARTED" ]; then
        as_pg "$PG_BIN/pg_ctl" stop -D "$WORK_DIR/pg/data" -m immediate -s || true
        echo "private-servers: PostgreSQL on port $PG_PORT stopped"
    fi
    rm -rf "$WORK_DIR"
    exit "$status"
}
trap stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Throwaway data: no durability wanted, speed is (fsync off).
as_pg "$PG_BIN/initdb" -D "$WORK_DIR/pg/data" -U "$PG_USER" -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
PG_STARTED=1
as_pg "$PG_BIN/pg_ctl" start -D "$WORK_DIR/pg/data" -l "$WORK_DIR/pg/server.log" -w -t 60 -s \
    -o "-p $PG_PORT -k $WORK_DIR/pg -c listen_addresses=127.0.0.1 -c max_connections=300 \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    || { cat "$WORK_DIR/pg/server.log" >&2; exit 1; }
as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" executor
echo "private-servers: PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') started on port $PG_PORT ($WORK_DIR/pg)"

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --dir "$WORK_DIR" --pidfile "$WORK_DIR/redis.pid" --logfile "$WORK_DIR/redis.log"
REDIS_STARTED=1
for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping | grep -q PONG || { cat "$WORK_DIR/redis.log" >&2; exit 1; }
echo "private-servers: Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) started on port $REDIS_PORT"

export DATABASE_URL="postgres://$PG_USER@127.0.0.1:$PG_PORT/executor"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
"$@"
