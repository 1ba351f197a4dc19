#!/usr/bin/env bash
# Benchmark (not a test): the primary's CPU that decoding on a standby saves (issue 21).
#
#   scripts/lib/bench_standby.sh [--rows N] [--rounds R] [--pg MAJOR] [--bin DIR] [--results FILE]
#     --rows     outbox rows loaded on the primary, in transactions of 10, as scripts/bench's drain (default 100000)
#     --rounds   drains per contender, interleaved primary/standby (default 3; the median counts)
#     --pg       PostgreSQL major version, 16 or later (default $TAILGATE_TEST_PG or 16; a PyPI wheel, pg-wheel.sh)
#     --bin      directory holding tailgate and tailgate-bench (default: a release build of this checkout)
#     --results  append one JSON line per drain to FILE (phase "standby_cpu"; default: print them only)
#
# A wheel primary (wal_level = logical) and a streaming standby of it (physical slot, hot_standby_feedback = on),
# one logical slot per drain on each, created before the load; Kafka is `tailgate dev-kafka` (its own process).
# Each drain runs `tailgate-bench connector` once against the primary and once against the standby (with
# primaryConninfo), and records the CPU seconds (utime + stime, /proc) that each cluster's postgres processes used
# during it: the postmaster's own and its reaped children's (cutime + cstime: a walsender that exits when the
# drain ends is counted), plus every live child's. Both clusters' background work (the physical walsender to the
# standby, the standby's startup process replaying) is included on both sides: the difference between the two
# contenders is what moving the decoding costs or saves each server.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=100000
ROUNDS=3
PG=${TAILGATE_TEST_PG:-16}
BIN=
RESULTS_OUT=
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) ROWS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --pg) PG=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        --results) RESULTS_OUT=$2; shift 2 ;;
        *) echo "usage: scripts/lib/bench_standby.sh [--rows N] [--rounds R] [--pg MAJOR] [--bin DIR] [--results FILE]" >&2; exit 64 ;;
    esac
done
if [ "$PG" -lt 16 ]; then
    echo "bench_standby: decoding on a standby needs PostgreSQL 16 or later (--pg $PG)" >&2
    exit 64
fi
. scripts/lib/pg-wheel.sh
tg_pg_select "$PG"
. scripts/lib/postgres.sh

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tailgate-bench-standby.XXXXXX")
chmod 755 "$WORK"
PIDS=()
PRIMARY_DIR=
STANDBY_DIR=
cleanup() {
    for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true; done
    if [ -n "$STANDBY_DIR" ] && [ -d "$STANDBY_DIR" ]; then
        tg_as_pg "$TG_PG_BIN/pg_ctl" -D "$STANDBY_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$STANDBY_DIR"
    fi
    TG_PG_DIR=$PRIMARY_DIR tg_pg_stop
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
psql() { "$TG_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

if [ -z "$BIN" ]; then
    echo "bench_standby: building (release)" >&2
    swift build -c release --product tailgate >/dev/null
    swift build -c release --product tailgate-bench >/dev/null
    BIN=$(swift build -c release --show-bin-path)
fi

# ---- the primary and its streaming standby ------------------------------------------------------------------------
tg_pg_start "max_wal_size = 4GB" "wal_sender_timeout = 10s"
PRIMARY_DIR=$TG_PG_DIR
PRIMARY_PORT=$PGPORT
psql -d postgres -c "CREATE DATABASE bench"
psql -d postgres -o /dev/null -c "SELECT pg_create_physical_replication_slot('standby1')"
STANDBY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tailgate-pg-standby.XXXXXX")
if [ "$(id -u)" = 0 ]; then chown postgres: "$STANDBY_DIR"; fi
tg_as_pg "$TG_PG_BIN/pg_basebackup" -D "$STANDBY_DIR/data" -h "$PRIMARY_DIR" -p "$PRIMARY_PORT" -U postgres \
    -X stream -S standby1 -R --no-sync -c fast
STANDBY_PORT=$(tg_free_port)
{
    echo "port = $STANDBY_PORT"
    echo "unix_socket_directories = '$STANDBY_DIR'"
    echo "hot_standby_feedback = on"
    echo "primary_slot_name = 'standby1'"
    echo "primary_conninfo = 'host=$PRIMARY_DIR port=$PRIMARY_PORT user=postgres application_name=standby1'"
} | tg_as_pg tee -a "$STANDBY_DIR/data/postgresql.auto.conf" >/dev/null
tg_as_pg "$TG_PG_BIN/pg_ctl" -D "$STANDBY_DIR/data" -l "$STANDBY_DIR/server.log" -w start >/dev/null \
    || { cat "$STANDBY_DIR/server.log" >&2; exit 1; }
PRIMARY=(-h "$PRIMARY_DIR" -p "$PRIMARY_PORT" -d bench)
STANDBY=(-h "$STANDBY_DIR" -p "$STANDBY_PORT" -d bench)
PRIMARY_CONNINFO="host=$PRIMARY_DIR port=$PRIMARY_PORT dbname=bench user=postgres"
STANDBY_CONNINFO="host=$STANDBY_DIR port=$STANDBY_PORT dbname=bench user=postgres"

psql "${PRIMARY[@]}" -o /dev/null <<'SQL'
CREATE TABLE outbox_event (id uuid PRIMARY KEY, topic text NOT NULL, aggregate_type text, aggregate_id text NOT NULL,
    event_type text NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE PUBLICATION bench FOR TABLE outbox_event WITH (publish = 'insert');
SQL
wait_for_replay() { # the standby has replayed the primary's WAL up to now
    local target
    target=$(psql "${PRIMARY[@]}" -At -c "SELECT pg_current_wal_lsn()")
    for _ in $(seq 6000); do
        [ "$(psql "${STANDBY[@]}" -At -c "SELECT pg_last_wal_replay_lsn() >= '$target'")" = t ] && return 0
        sleep 0.1
    done
    echo "bench_standby: the standby did not replay $target within 10 minutes" >&2
    return 1
}
wait_for_replay

# One slot per drain on each server, all created before the load so that each drain reads the same WAL. A slot on
# the standby waits for a running-transactions record from the primary: pg_log_standby_snapshot() writes one.
for round in $(seq "$ROUNDS"); do
    psql "${PRIMARY[@]}" -o /dev/null -c "SELECT pg_create_logical_replication_slot('bench_primary_$round', 'pgoutput')"
    psql "${STANDBY[@]}" -o /dev/null -c "SELECT pg_create_logical_replication_slot('bench_standby_$round', 'pgoutput')" &
    creating=$!
    while kill -0 "$creating" 2>/dev/null; do
        psql "${PRIMARY[@]}" -o /dev/null -c "SELECT pg_log_standby_snapshot()"
        sleep 0.2
    done
    wait "$creating"
done

echo "bench_standby: loading $ROWS outbox rows on the primary in transactions of 10 (payload ~300 B, 1,000 keys, 2 topics)" >&2
psql "${PRIMARY[@]}" -c "
DO \$\$ BEGIN
  FOR t IN 0..($ROWS / 10 - 1) LOOP
    INSERT INTO outbox_event (id, topic, aggregate_type, aggregate_id, event_type, payload)
    SELECT gen_random_uuid(), CASE WHEN g % 2 = 0 THEN 'order-events' ELSE 'catalog-events' END, 'product',
           'product-' || ((t * 10 + g) % 1000), 'ProductViewed',
           jsonb_build_object('productId', 'product-' || ((t * 10 + g) % 1000), 'userId', 'user-' || g, 'seq', t * 10 + g,
                              'note', repeat('x', 200))
    FROM generate_series(0, 9) g;
    COMMIT;
  END LOOP;
END \$\$;"
wait_for_replay
psql "${PRIMARY[@]}" -o /dev/null -c "CHECKPOINT"
psql "${STANDBY[@]}" -o /dev/null -c "CHECKPOINT"

"$BIN/tailgate" dev-kafka --brokers 1 --partitions 24 --topics order-events,catalog-events >"$WORK/kafka.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do [ -s "$WORK/kafka.log" ] && break; sleep 0.1; done
BOOTSTRAP=$(head -1 "$WORK/kafka.log")

cluster_cpu() { # cluster_cpu DATADIR: CPU seconds of the cluster's processes so far (reaped children included)
    python3 - "$1" <<'PY'
import os, sys
ticks = os.sysconf("SC_CLK_TCK")
postmaster = int(open(os.path.join(sys.argv[1], "postmaster.pid")).readline())
def fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
total = 0
own = fields(postmaster)
total += sum(int(own[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
for entry in os.listdir("/proc"):
    if not entry.isdigit() or int(entry) == postmaster:
        continue
    try:
        stat = fields(entry)
    except OSError:
        continue
    if int(stat[1]) == postmaster:  # a live child: its own time (its children are reaped into it)
        total += sum(int(stat[i]) for i in (11, 12, 13, 14))
print(f"{total / ticks:.2f}")
PY
}

connector_json() { # connector_json ON SLOT FILE
    local conninfo=$PRIMARY_CONNINFO primary=""
    if [ "$1" = standby ]; then
        conninfo=$STANDBY_CONNINFO
        primary="\"primaryConninfo\": \"$PRIMARY_CONNINFO\", "
    fi
    cat >"$3" <<JSON
{"name": "bench", "postgres": {"conninfo": "$conninfo", ${primary}"slot": "$2", "publication": "bench",
  "createSlot": false, "createPublication": false},
 "outbox": {"table": "public.outbox_event", "topic": {"column": "topic"}, "headers": {"event_type": "event_type"}},
 "kafka": {"bootstrap.servers": "$BOOTSTRAP"},
 "metrics": {"listen": "127.0.0.1:0"}, "heartbeatIntervalSeconds": 0, "maxInFlightRecords": 20000}
JSON
}

LINES="$WORK/standby_cpu.jsonl"
: >"$LINES"
for round in $(seq "$ROUNDS"); do
    for on in primary standby; do
        echo "bench_standby, round $round of $ROUNDS: the connector decoding on the $on" >&2
        connector_json "$on" "bench_${on}_$round" "$WORK/connector.json"
        primary_before=$(cluster_cpu "$PRIMARY_DIR/data")
        standby_before=$(cluster_cpu "$STANDBY_DIR/data")
        "$BIN/tailgate-bench" connector --config "$WORK/connector.json" --state-dir "$WORK/state" --expect "$ROWS" \
            >"$WORK/drain.json" 2>"$WORK/drain.err" || { cat "$WORK/drain.err" >&2; exit 1; }
        # The walsender exits once the connector has stopped; its time reaches the postmaster when it is reaped.
        sleep 1
        primary_after=$(cluster_cpu "$PRIMARY_DIR/data")
        standby_after=$(cluster_cpu "$STANDBY_DIR/data")
        python3 - "$WORK/drain.json" "$on" "$round" "$ROWS" "$PG" "$primary_before" "$primary_after" "$standby_before" \
            "$standby_after" >>"$LINES" <<'PY'
import json, sys
drain = json.load(open(sys.argv[1]))
on, round_, rows, pg = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
pb, pa, sb, sa = map(float, sys.argv[6:10])
print(json.dumps({"phase": "standby_cpu", "contender": f"connector-decoding-on-{on}", "round": round_, "rows": rows,
                  "postgresql": pg, "primary_cpu_s": round(pa - pb, 2), "standby_cpu_s": round(sa - sb, 2),
                  "connector_cpu_s": drain.get("cpu_seconds"), "start_to_last_ack_s": drain.get("start_to_last_ack_s"),
                  "events": drain.get("events")}))
PY
        tail -1 "$LINES"
    done
done
[ -n "$RESULTS_OUT" ] && cat "$LINES" >>"$RESULTS_OUT"

python3 - "$LINES" "$ROWS" "$PG" <<'PY'
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1])]
rows, pg = int(sys.argv[2]), sys.argv[3]
def median(values):
    values = sorted(values)
    return values[len(values) // 2]
print(f"\n**Decoding on a standby**: the connector drains {rows:,} outbox rows (in transactions of 10) from a slot on the "
      f"primary, then from one on its streaming standby (PostgreSQL {pg}); CPU seconds of each cluster's postgres "
      f"processes during the drain (median of {len(lines) // 2} round(s)):\n")
print("| connector decoding on | primary CPU s | standby CPU s | connector CPU s | drain s | rounds (primary CPU s) |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
result = {}
for on in ("primary", "standby"):
    runs = [r for r in lines if r["contender"] == f"connector-decoding-on-{on}"]
    result[on] = median(r["primary_cpu_s"] for r in runs)
    print(f"| {on} | {result[on]:.2f} | {median(r['standby_cpu_s'] for r in runs):.2f} | "
          f"{median(r['connector_cpu_s'] or 0 for r in runs):.2f} | {median(r['start_to_last_ack_s'] or 0 for r in runs):.2f} | "
          + " / ".join(f"{r['primary_cpu_s']:.2f}" for r in runs) + " |")
if result["primary"] > 0:
    print(f"\nThe primary's CPU during the drain: {result['standby']:.2f} s with the connector on the standby against "
          f"{result['primary']:.2f} s on the primary ({(1 - result['standby'] / result['primary']) * 100:.0f}% saved).")
PY
