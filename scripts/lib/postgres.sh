# shellcheck shell=bash
# Throwaway PostgreSQL clusters for scripts. Source it, then `tg_pg_start`; `tg_pg_stop` runs from your EXIT trap.
# Sets PGHOST (the socket dir), PGPORT, PGUSER=postgres, TG_PG_DIR. As root the cluster runs as user postgres.

TG_PG_BIN=${TG_PG_BIN:-/usr/lib/postgresql/15/bin}

# Runs a server tool as postgres (when root) with the server's own libraries (TG_PG_LIB, a wheel's) on its path.
tg_as_pg() {
    local command=("$@")
    if [ -n "${TG_PG_LIB:-}" ]; then command=(env "LD_LIBRARY_PATH=$TG_PG_LIB" "$@"); fi
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "${command[@]}"; else "${command[@]}"; fi
}

# A free port below the kernel's ephemeral range: a port from bind(0) could be handed by the kernel to the next
# bind(0) (a mock broker's listener) before PostgreSQL binds it.
tg_free_port() {
    python3 - <<'PY'
import random, socket
with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    start = int(f.read().split()[0])
high = max(13000, min(start, 32768))
for _ in range(200):
    port = random.randrange(12000, high)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free TCP port below the ephemeral range")
PY
}

# tg_pg_start [extra postgresql.conf lines...]
tg_pg_start() {
    TG_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tailgate-pg.XXXXXX")
    if [ "$(id -u)" = 0 ]; then chown postgres: "$TG_PG_DIR"; fi
    tg_as_pg "$TG_PG_BIN/initdb" -D "$TG_PG_DIR/data" -U postgres -A trust -E UTF8 --no-sync >"$TG_PG_DIR/initdb.log" 2>&1 \
        || { cat "$TG_PG_DIR/initdb.log" >&2; return 1; }
    PGPORT=$(tg_free_port)
    {
        echo "port = $PGPORT"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$TG_PG_DIR'"
        echo "wal_level = logical"
        echo "max_replication_slots = 20"
        echo "max_wal_senders = 20"
        echo "fsync = off"
        for line in "$@"; do echo "$line"; done
    } | tg_as_pg tee -a "$TG_PG_DIR/data/postgresql.conf" >/dev/null
    tg_as_pg "$TG_PG_BIN/pg_ctl" -D "$TG_PG_DIR/data" -l "$TG_PG_DIR/server.log" -w start >/dev/null \
        || { cat "$TG_PG_DIR/server.log" >&2; return 1; }
    export PGHOST="$TG_PG_DIR" PGPORT PGUSER=postgres TG_PG_DIR
}

tg_pg_stop() {
    if [ -n "${TG_PG_DIR:-}" ] && [ -d "$TG_PG_DIR" ]; then
        tg_as_pg "$TG_PG_BIN/pg_ctl" -D "$TG_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$TG_PG_DIR"
        TG_PG_DIR=
    fi
}
