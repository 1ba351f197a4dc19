"""The chaos run behind scripts/chaos: a continuous commerce load through the real pipeline while faults are injected
at moments drawn from a printed seed; at the end the commerce database, Kafka and the consumer's ledger are compared.

PostgreSQL runs as a throwaway cluster (scripts/lib/postgres.sh), Kafka is `tailgate dev-kafka` (3 brokers, faults
through its stdin), the connector is `tailgate run` and the consumer is two LedgerConsumer processes (OutboxConsumer
whose handler appends one ledger row per application, with no unique constraint, so a loss and a duplicate cannot
cancel out). With --statement-consumer the second one (slot b) runs that handler as a statement handler
(`runStatements`, TG_HANDLER=statements): its batches go in one pipeline and fall back to the claim first, so both
ways of applying a batch share the partitions, the faults and the ledger. Every process's output goes to a log; the secrets the run used are searched for in all of it.

On PostgreSQL 17+ the server has a physical standby (pg_basebackup, `sync_replication_slots`, the primary's
`synchronized_standby_slots`), every process reaches the database through a multi-host conninfo, and the last fault
is a failover: the primary crashes (`pg_ctl stop -m immediate`) and the standby is promoted. It is the last one
because it leaves no standby: the PostgreSQL faults before it all act on the same primary-and-standby pair, and the
harness's own SQL afterwards (the drain, the comparison, the dropped slot) goes to the new primary (PRIMARY). On 15
and 16 the failover row is skipped with the reason.

With --netns (root only), PostgreSQL, Kafka, the connector and the consumers run in network namespaces of their own
(pg, kafka, app, svc) joined through a router namespace (scripts/lib/netlab.py), and silent cuts are added to the
faults: packets between two hosts dropped without any answer, as a pulled cable does, each held 10 s and then until
the pipeline shows it noticed (at least 15 s, past the server's 10 s wal_sender_timeout; at most 45 s).

Environment: PGHOST PGPORT TG_PG_BIN TG_PG_DIR BIN (debug products dir) WORK (scratch dir).
"""
import argparse
import atexit
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402

PG_BIN = os.environ["TG_PG_BIN"]
PGHOST, PGPORT, PG_DIR = os.environ["PGHOST"], os.environ["PGPORT"], os.environ["TG_PG_DIR"]
# The server the harness's own SQL goes to: the primary, and after a failover the promoted standby.
PRIMARY = {"dir": PG_DIR, "port": PGPORT}
STANDBY = None  # {"dir", "port"} of the physical standby on 17+ (see start_standby)
STANDBY_SLOT = "standby1"
BIN, WORK = os.environ["BIN"], os.environ["WORK"]
LOGS = os.path.join(WORK, "logs")
AS_PG = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
# A wheel's server loads its own libpq (libpqwalreceiver); Tailgate's processes keep Debian's.
if os.environ.get("TG_PG_LIB"):
    AS_PG = AS_PG + ["env", f"LD_LIBRARY_PATH={os.environ['TG_PG_LIB']}"]
LAB = None  # the network lab with --netns: hosts pg, kafka, app (the connector), svc (the consumers)


def in_host(host):
    """argv prefix that runs a command in `host`'s namespace with --netns; nothing without."""
    return LAB.exec_prefix(host) if LAB else []


def pg_address():
    return LAB.address("pg") if LAB else "127.0.0.1"


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def psql(sql, db="commerce", check=True, timeout=30):
    """Runs SQL as the superuser; returns stdout lines. With check=False returns None on failure."""
    result = subprocess.run([f"{PG_BIN}/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", PRIMARY["dir"],
                             "-p", str(PRIMARY["port"]), "-d", db, "-c", sql],
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        if check:
            raise RuntimeError(f"psql failed: {sql[:80]}: {result.stderr.strip()}")
        return None
    return [line for line in result.stdout.splitlines() if line]


def psql_retry(sql, db="commerce", deadline=60):
    end = time.monotonic() + deadline
    while True:
        rows = psql(sql, db, check=False)
        if rows is not None:
            return rows
        if time.monotonic() > end:
            return psql(sql, db)
        time.sleep(0.2)


def server_major():
    """The server binaries' major version (15, 18, ...)."""
    output = subprocess.run([f"{PG_BIN}/postgres", "--version"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"\) (\d+)", output).group(1))


def conninfo(db, user, tcp, attributes="primary"):
    """A conninfo for `db` as `user`: over TCP (the lab address with --netns) or the socket directory; with a standby,
    both servers and `target_session_attrs`, so libpq picks whichever is the primary now."""
    hosts = [pg_address() if tcp else PG_DIR]
    ports = [str(PGPORT)]
    if STANDBY:
        hosts.append(pg_address() if tcp else STANDBY["dir"])
        ports.append(str(STANDBY["port"]))
    text = f"host={','.join(hosts)} port={','.join(ports)} dbname={db} user={user}"
    return text + (f" target_session_attrs={attributes} connect_timeout=5" if STANDBY else "")


def free_port():
    """A TCP port below the kernel's ephemeral range that nothing is bound to now (as tg_free_port)."""
    import socket
    with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
        start = int(handle.read().split()[0])
    for _ in range(200):
        port = random.randrange(12000, max(13000, min(start, 32768)))
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            probe.close()
    raise RuntimeError("no free TCP port below the ephemeral range")


def start_standby():
    """PostgreSQL 17+: a physical standby of the primary, ready for a failover that keeps the connector's slot.

    pg_basebackup -R through the physical slot STANDBY_SLOT; on the standby `sync_replication_slots`,
    `hot_standby_feedback`, `primary_slot_name` and a `dbname` in `primary_conninfo` (slot synchronization needs
    them); on the primary `synchronized_standby_slots`, so the connector never receives what the standby lacks.
    The wheel's server tools run with its own libpq (AS_PG): pg_basebackup -R from 18 writes `sslnegotiation`,
    which an older libpq would reject."""
    global STANDBY
    directory = os.path.join(WORK, "standby")
    os.makedirs(directory)
    if os.getuid() == 0:
        subprocess.run(["chown", "postgres:", directory], check=True)
    subprocess.run(AS_PG + [f"{PG_BIN}/pg_basebackup", "-D", os.path.join(directory, "data"), "-h", PG_DIR, "-p", str(PGPORT),
                            "-U", "postgres", "-X", "stream", "-C", "-S", STANDBY_SLOT, "-R", "--no-sync", "-c", "fast"],
                   stdout=subprocess.DEVNULL, check=True)
    port = free_port()
    settings = [f"port = {port}", f"unix_socket_directories = '{directory}'",
                f"listen_addresses = '{pg_address()}'", "hot_standby_feedback = on", "sync_replication_slots = on",
                f"primary_slot_name = '{STANDBY_SLOT}'", "wal_retrieve_retry_interval = 1s",
                f"primary_conninfo = 'host={PG_DIR} port={PGPORT} user=postgres dbname=commerce application_name={STANDBY_SLOT}'"]
    # postgresql.auto.conf is read last: this overrides what pg_basebackup -R wrote there.
    subprocess.run(AS_PG + ["tee", "-a", os.path.join(directory, "data", "postgresql.auto.conf")],
                   input=("\n" + "\n".join(settings) + "\n").encode(), stdout=subprocess.DEVNULL, check=True)
    subprocess.run(in_host("pg") + AS_PG + [f"{PG_BIN}/pg_ctl", "-D", os.path.join(directory, "data"), "-w",
                                            "-l", os.path.join(directory, "server.log"), "start"],
                   stdout=subprocess.DEVNULL, check=True)
    STANDBY = {"dir": directory, "port": port}
    psql(f"ALTER SYSTEM SET synchronized_standby_slots = '{STANDBY_SLOT}'", "postgres")
    psql("SELECT pg_reload_conf()", "postgres")
    log(f"PostgreSQL {server_major()}: physical standby on port {port} (slot {STANDBY_SLOT}, sync_replication_slots on); "
        "the connector, the consumers and the writer use multi-host conninfos")


def standby_psql(sql):
    """SQL on the standby (None when it does not answer)."""
    result = subprocess.run([f"{PG_BIN}/psql", "-X", "-q", "-At", "-h", STANDBY["dir"], "-p", str(STANDBY["port"]),
                             "-d", "commerce", "-c", sql], capture_output=True, text=True, timeout=30)
    return result.stdout.strip() if result.returncode == 0 else None


class Child:
    """A child process whose output is appended to WORK/logs/NAME.log."""

    def __init__(self, name, argv, env=None, stdin=False, host=None):
        self.name = name
        self.path = os.path.join(LOGS, f"{name}.log")
        self.out = open(self.path, "ab")
        self.process = subprocess.Popen((in_host(host) if host else []) + argv, stdout=self.out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                        env={**os.environ, **(env or {})}, start_new_session=True)
        with open(os.path.join(WORK, "pids"), "a") as pids:  # scripts/chaos kills these if the harness dies
            pids.write(f"{self.process.pid}\n")

    def text(self):
        with open(self.path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def alive(self):
        return self.process.poll() is None

    def signal(self, number):
        if self.alive():
            self.process.send_signal(number)

    def wait(self, timeout):
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.alive():
            self.process.kill()
            self.process.wait()


class DevKafka:
    def __init__(self):
        self.child = Child("dev-kafka", [f"{BIN}/tailgate", "dev-kafka", "--brokers", "3", "--partitions", "6",
                                         "--topics", "events"], stdin=True, host="kafka")
        for _ in range(200):
            lines = self.child.text().splitlines()
            if lines and lines[0].startswith("127.0.0.1:"):
                self.bootstrap = lines[0].strip()
                if LAB:
                    ports = [int(server.rsplit(":", 1)[1]) for server in self.bootstrap.split(",")]
                    for client in ("app", "svc"):
                        LAB.expose_loopback(ports, "kafka", client)
                return
            time.sleep(0.05)
        raise RuntimeError("dev-kafka printed no bootstrap line:\n" + self.child.text())

    def command(self, line):
        answers_before = self.child.text().count("\nok ") + self.child.text().count("\nerror")
        self.child.process.stdin.write((line + "\n").encode())
        self.child.process.stdin.flush()
        for _ in range(100):
            text = self.child.text()
            if text.count("\nok ") + text.count("\nerror") > answers_before:
                if text.rstrip().splitlines()[-1].startswith("error"):
                    raise RuntimeError(f"dev-kafka refused '{line}': {text.splitlines()[-1]}")
                return
            time.sleep(0.02)
        raise RuntimeError(f"dev-kafka did not answer '{line}'")


class Writer(threading.Thread):
    """The commerce load: transactions of 5 outbox rows at a fixed rate, each row labelled with the current phase.

    One psql session reads the statements from a pipe; when it dies (PostgreSQL restarted) a new one is started.
    What counts as produced is what the outbox table holds at the end, not what was attempted."""

    def __init__(self, rate):
        super().__init__(daemon=True)
        self.interval = 5.0 / rate
        self.phase = "warm-up"
        self.running = True
        self.sequence = 0
        self.restarts = 0

    def run(self):
        session = None
        next_due = time.monotonic()
        while self.running:
            if session is None or session.poll() is not None:
                if session is not None:
                    self.restarts += 1
                    time.sleep(0.3)
                session = subprocess.Popen([f"{PG_BIN}/psql", "-X", "-q", "-d", conninfo("commerce", "postgres", False, "read-write")],
                                           stdin=subprocess.PIPE,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.sequence += 1
            statement = (
                "INSERT INTO outbox_event (id, aggregate_id, event_type, payload, phase) "
                f"SELECT gen_random_uuid(), 'product-' || (({self.sequence} * 5 + g) % 50), 'ProductViewed', "
                f"jsonb_build_object('n', {self.sequence} * 5 + g, 'phase', '{self.phase}'), '{self.phase}' "
                "FROM generate_series(0, 4) g;\n")
            try:
                session.stdin.write(statement.encode())
                session.stdin.flush()
            except (BrokenPipeError, OSError):
                session = None
            next_due += self.interval
            delay = next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_due = time.monotonic()
        if session is not None and session.poll() is None:
            session.stdin.close()
            session.wait(10)


class Pipeline:
    """The connector and two consumers, restartable."""

    def __init__(self, kafka, secret, statement_consumer=False):
        self.kafka = kafka
        self.secret = secret
        # Slot b runs a statement handler (one pipeline per batch) when asked.
        self.statement_slots = {"b"} if statement_consumer else set()
        self.generation = 0
        config = {
            "name": "chaos",
            "postgres": {"conninfo": conninfo("commerce", "tailgate", True),
                         "slot": "chaos", "publication": "chaos", "createSlot": True, "createPublication": False},
            "outbox": {"table": "public.outbox_event", "topic": {"name": "events"},
                       "headers": {"event_type": "event_type", "phase": "phase"}},
            # One request in flight: librdkafka treats a later batch's success as proof that an earlier failed one
            # was written (a real broker enforces idempotent sequence order); librdkafka 2.0.2's mock does not, so
            # with pipelining an injected Produce error fabricates "delivered" records the mock never stored.
            "kafka": {"bootstrap.servers": kafka.bootstrap, "linger.ms": "5", "max.in.flight.requests.per.connection": "1"},
            "heartbeatIntervalSeconds": 0,
            "metrics": {"listen": "127.0.0.1:0"},
        }
        self.config_path = os.path.join(WORK, "chaos.json")
        with open(self.config_path, "w") as handle:
            json.dump(config, handle)
        self.connector = None
        self.consumers = {}

    def start_connector(self, name=None):
        self.generation += 1
        child = Child(name or f"connector-{self.generation}",
                      [f"{BIN}/tailgate", "run", "--config", self.config_path, "--state-dir", os.path.join(WORK, "state"),
                       "--shutdown-timeout", "10"],
                      env={"PGPASSWORD": self.secret}, host="app")
        return child

    def start_consumer(self, slot):
        self.generation += 1
        self.consumers[slot] = Child(f"consumer-{slot}-{self.generation}", [f"{BIN}/LedgerConsumer"], env={
            "TG_BOOTSTRAP": self.kafka.bootstrap,
            "TG_POSTGRES": conninfo("service", "postgres", LAB is not None),
            "TG_GROUP": "metrics", "TG_TOPICS": "events", "TG_BATCH": "50", "TG_SESSION_TIMEOUT_MS": "6000",
            "TG_HANDLER": "statements" if slot in self.statement_slots else "session"}, host="svc")

    def start(self):
        self.connector = self.start_connector()
        for slot in ("a", "b"):
            self.start_consumer(slot)

    def stop(self):
        for child in [self.connector, *self.consumers.values()]:
            if child is not None and child.alive():
                child.signal(signal.SIGTERM)
        for child in [self.connector, *self.consumers.values()]:
            if child is not None and child.wait(30) is None:
                child.kill()


def wait_streaming(child, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if "event=streaming" in child.text():
            return True
        if not child.alive():
            return False
        time.sleep(0.05)
    return False


def wait_streaming_again(child, since_line, timeout):
    """The monotonic time at which `child` logged event=streaming after line `since_line`, or None."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any("event=streaming" in line for line in child.text().splitlines()[since_line:]):
            return time.monotonic()
        time.sleep(0.05)
    return None


def flowing_since(moment_sql_time, start, timeout=90):
    """Seconds from `start` (monotonic, taken at `moment_sql_time`) until the ledger holds an event committed after
    that moment: the pipeline flows again."""
    while time.monotonic() - start < timeout:
        ids = psql(f"SELECT id FROM outbox_event WHERE created_at > '{moment_sql_time}' ORDER BY created_at LIMIT 50",
                   check=False)
        if ids:
            listed = ",".join(f"'{i}'" for i in ids)
            if psql(f"SELECT 1 FROM ledger WHERE event_id IN ({listed}) LIMIT 1", "service", check=False):
                return time.monotonic() - start
        time.sleep(0.1)
    return None


def now_sql():
    return psql_retry("SELECT clock_timestamp()")[0]


def start_lab():
    """--netns: builds the lab and moves the running PostgreSQL into its host (same data directory and socket),
    listening on the lab address. Everything is removed at exit (and by scripts/chaos's cleanup from WORK/netns)."""
    global LAB
    reason = netlab.unavailable_reason()
    if reason:
        raise SystemExit(reason)
    LAB = netlab.NetLab(["pg", "kafka", "app", "svc"], os.path.join(WORK, "netns"))
    data = os.path.join(PG_DIR, "data")

    def close_lab():
        for cluster in [data] + ([os.path.join(STANDBY["dir"], "data")] if STANDBY else []):
            subprocess.run(AS_PG + [f"{PG_BIN}/pg_ctl", "-D", cluster, "-m", "immediate", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        LAB.close()
    atexit.register(close_lab)
    subprocess.run(AS_PG + [f"{PG_BIN}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], stdout=subprocess.DEVNULL, check=True)
    subprocess.run(in_host("pg") + AS_PG + [f"{PG_BIN}/pg_ctl", "-D", data, "-w", "-l", os.path.join(PG_DIR, "server.log"),
                                            "-o", f"-c listen_addresses={LAB.address('pg')}", "start"],
                   stdout=subprocess.DEVNULL, check=True)
    log(f"--netns: PostgreSQL at {LAB.address('pg')}, Kafka, the connector and the consumers in namespaces of their own")


def complains(child, since_line):
    """Whether `child` logged a warning or an error after line `since_line`."""
    return any("level=warning" in line or "level=error" in line for line in child.text().splitlines()[since_line:])


def healthz(child):
    """The connector's /healthz status code (from inside its host), or '' when it does not answer."""
    ports = re.findall(r"event=metrics_listening .*?port=(\d+)", child.text())
    if not ports:
        return ""
    result = subprocess.run(in_host("app") + ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2",
                                              f"http://127.0.0.1:{ports[-1]}/healthz"], capture_output=True, text=True)
    return result.stdout.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--injections", type=int, default=3)
    parser.add_argument("--rate", type=int, default=100, help="events per second")
    parser.add_argument("--max-down", type=float, default=10.0, help="longest broker outage, seconds")
    parser.add_argument("--netns", action="store_true", help="run every process in a network namespace; add silent cuts")
    parser.add_argument("--short-cuts", action="store_true", help="with --netns: only the cuts held until detected")
    parser.add_argument("--statement-consumer", action="store_true",
                        help="the second consumer runs its handler as a statement handler (runStatements: one pipeline per batch)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    secret = f"chaos-{args.seed}-{rng.getrandbits(48):x}"
    log(f"seed {args.seed}; {args.injections} injection(s) per fault; {args.rate} events/s")

    os.makedirs(LOGS, exist_ok=True)
    if args.netns:
        start_lab()
    psql("CREATE DATABASE commerce", "postgres")
    psql("CREATE DATABASE service", "postgres")
    psql(f"""
        CREATE TABLE outbox_event (id uuid PRIMARY KEY, aggregate_id text NOT NULL, event_type text NOT NULL,
            payload jsonb NOT NULL, phase text NOT NULL, created_at timestamptz NOT NULL DEFAULT clock_timestamp());
        CREATE ROLE tailgate LOGIN REPLICATION PASSWORD '{secret}';
        GRANT SELECT ON outbox_event TO tailgate;
        CREATE PUBLICATION chaos FOR TABLE outbox_event WITH (publish = 'insert');""")
    psql('CREATE TABLE ledger (event_id text NOT NULL, topic text NOT NULL, partition int NOT NULL, "offset" bigint NOT NULL);'
         'CREATE INDEX ON ledger (event_id)', "service")
    # pg_hba: the connector's role authenticates with its password over TCP.
    with open(os.path.join(PG_DIR, "data", "pg_hba.conf"), "r") as handle:
        hba = handle.read()
    hba = "host commerce tailgate 127.0.0.1/32 scram-sha-256\nhost replication tailgate 127.0.0.1/32 scram-sha-256\n" + hba
    if LAB:
        hba = ("host commerce tailgate 198.18.0.0/16 scram-sha-256\nhost replication tailgate 198.18.0.0/16 scram-sha-256\n"
               "host service postgres 198.18.0.0/16 trust\n") + hba
    subprocess.run(AS_PG + ["tee", os.path.join(PG_DIR, "data", "pg_hba.conf")], input=hba.encode(),
                   stdout=subprocess.DEVNULL, check=True)
    psql("SELECT pg_reload_conf()")
    major = server_major()
    if major >= 17:
        start_standby()

    kafka = DevKafka()
    pipeline = Pipeline(kafka, secret, statement_consumer=args.statement_consumer)
    pipeline.start()
    if not wait_streaming(pipeline.connector):
        raise SystemExit("the connector did not start streaming:\n" + pipeline.connector.text())
    writer = Writer(args.rate)
    writer.start()
    time.sleep(3)

    results = []  # (fault, times injected, recovery seconds)
    failures = []

    def stop_child(child, what, kill_signal):
        """Signals a child and waits; a SIGTERM must end it cleanly. Then a pause before the restart."""
        child.signal(kill_signal)
        status = child.wait(30)
        if kill_signal == signal.SIGTERM and status != 0:
            failures.append(f"{what} exited {status} on SIGTERM (expected 0)")
        if status is None:
            child.kill()
        time.sleep(rng.uniform(0.2, 2.0))

    def restart_connector_after(kill_signal):
        stop_child(pipeline.connector, "connector", kill_signal)
        pipeline.connector = pipeline.start_connector()

    def restart_consumer_after(kill_signal):
        slot = rng.choice(sorted(pipeline.consumers))
        stop_child(pipeline.consumers[slot], "consumer", kill_signal)
        pipeline.start_consumer(slot)

    def broker_down():
        broker = rng.randint(1, 3)
        kafka.command(f"down {broker}")
        time.sleep(rng.uniform(1.0, args.max_down))
        kafka.command(f"up {broker}")

    def request_errors():
        api = rng.choice(["Produce", "Fetch"])
        kafka.command(f"error {api} {rng.choice(['NOT_LEADER_FOR_PARTITION', 'REQUEST_TIMED_OUT'])} {rng.randint(3, 20)}")
        time.sleep(1)

    def pg_restart():
        subprocess.run(in_host("pg") + AS_PG + [f"{PG_BIN}/pg_ctl", "-D", os.path.join(PRIMARY["dir"], "data"), "-m", "immediate",
                                                "-w", "restart", "-l", os.path.join(PRIMARY["dir"], "server.log")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    def walsender_cut():
        psql_retry("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'chaos'")

    def second_connector():
        first = pipeline.connector
        second = pipeline.start_connector(f"connector-second-{pipeline.generation + 1}")
        time.sleep(3)
        text = second.text()
        if "event=streaming" in text:
            failures.append("a second connector on the same slot streamed while the first was running")
        if "slot_in_use" not in text:
            failures.append("the second connector did not report that the slot is in use")
        first.kill()
        killed_at = (now_sql(), time.monotonic())
        if not wait_streaming(second, timeout=90):
            failures.append("the second connector did not take over after the first was killed:\n" + second.text()[-2000:])
        pipeline.connector = second
        return killed_at  # recovery counts from the first connector's death: the takeover is the recovery

    failover_notes = []

    def failover():
        """The primary crashes and the standby is promoted; the connector, the consumers and the writer follow."""
        global PRIMARY
        # A promotion keeps only a synchronized, permanent copy of the slot (the first copy is temporary until the
        # connector confirms past the standby's position; 15-30 s after the slot was created).
        waited = time.monotonic()
        query = ("SELECT synced AND NOT temporary AND invalidation_reason IS NULL FROM pg_replication_slots "
                 "WHERE slot_name = 'chaos'")
        while standby_psql(query) != "t" and time.monotonic() - waited < 120:
            time.sleep(0.5)
        if standby_psql(query) != "t":
            failures.append("failover: the slot was not synchronized to the standby within 120 s; not injected")
            return None
        sync_wait = time.monotonic() - waited
        lag = standby_psql("SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())")
        connector_lines = len(pipeline.connector.text().splitlines())
        subprocess.run(AS_PG + [f"{PG_BIN}/pg_ctl", "-D", os.path.join(PRIMARY["dir"], "data"), "-m", "immediate", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        crashed = time.monotonic()
        subprocess.run(AS_PG + [f"{PG_BIN}/pg_ctl", "-D", os.path.join(STANDBY["dir"], "data"), "-w", "promote"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        PRIMARY = dict(STANDBY)
        promoted = time.monotonic() - crashed
        followed = wait_streaming_again(pipeline.connector, connector_lines, timeout=90)
        if followed is None:
            failures.append("failover: the connector did not stream from the promoted standby within 90 s:\n"
                            + "\n".join(pipeline.connector.text().splitlines()[-8:]))
        elif "event=failover_followed" not in "\n".join(pipeline.connector.text().splitlines()[connector_lines:]):
            failures.append("failover: the connector streams again but did not log event=failover_followed")
        failover_notes.append(f"injected once the slot was synchronized on the standby (waited {sync_wait:.1f} s); "
                              f"promoted {promoted:.1f} s after the crash; the connector streamed again "
                              f"{'%.1f s' % (followed - crashed) if followed is not None else 'never'} after it; "
                              f"the standby's replay lag at the crash: {lag or '?'} bytes")
        # Recovery counts from the crash; an event committed after the promotion must reach the ledger.
        return now_sql(), crashed

    faults = [
        ("connector SIGKILL", lambda: restart_connector_after(signal.SIGKILL)),
        ("connector SIGTERM", lambda: restart_connector_after(signal.SIGTERM)),
        ("consumer SIGKILL", lambda: restart_consumer_after(signal.SIGKILL)),
        ("consumer SIGTERM", lambda: restart_consumer_after(signal.SIGTERM)),
        (f"Kafka broker down 1-{args.max_down:g} s", broker_down),
        ("Kafka request errors (Produce, Fetch)", request_errors),
        ("PostgreSQL restart -m immediate", pg_restart),
        ("walsender terminated", walsender_cut),
        ("second connector on the slot, first killed", second_connector),
    ]
    cut_details = {}  # fault name -> (seconds held, {signal: seconds to show, or None})

    def connector_signals():
        child = pipeline.connector
        start = len(child.text().splitlines())
        return {"log": lambda: complains(child, start), "/healthz 503": lambda: healthz(child) == "503"}

    def consumer_signals():
        children = list(pipeline.consumers.values())
        starts = [len(child.text().splitlines()) for child in children]
        return {"log": lambda: any(complains(child, start) for child, start in zip(children, starts))}

    def silent_cut(name, a, b, watch, hold):
        """Cuts a from b for `hold` seconds, or (hold None) until every signal showed: at least 15 s, at most 45 s."""
        signals = watch()
        LAB.cut(a, b)
        start = time.monotonic()
        detected = {}
        while True:
            for signal_name, check in signals.items():
                if signal_name not in detected and check():
                    detected[signal_name] = time.monotonic() - start
            held = time.monotonic() - start
            if hold is not None and held >= hold:
                break
            if hold is None and (held >= 45 or (held >= 15 and len(detected) == len(signals))):
                break
            time.sleep(0.25)
        LAB.heal(a, b)
        healed = (now_sql(), time.monotonic())
        cut_details[name] = (held, {signal_name: detected.get(signal_name) for signal_name in signals})
        return healed

    if LAB:
        for a, b, label, watch in [("app", "pg", "connector↔PostgreSQL", connector_signals),
                                   ("app", "kafka", "connector↔Kafka", connector_signals),
                                   ("svc", "pg", "consumers↔PostgreSQL", consumer_signals),
                                   ("svc", "kafka", "consumers↔Kafka", consumer_signals)]:
            for hold in ([None] if args.short_cuts else [10, None]):
                name = f"silent cut {label}, {'10 s' if hold else 'until detected'}"
                faults.append((name, lambda name=name, a=a, b=b, watch=watch, hold=hold: silent_cut(name, a, b, watch, hold)))

    # Last: it leaves no standby (see the module's doc comment).
    failover_name = "PostgreSQL failover (primary crashed, standby promoted)"
    if STANDBY:
        faults.append((failover_name, failover))
    else:
        reason = (f"PostgreSQL {major} does not synchronize logical slots to standbys (17+ does), so a promotion loses the "
                  "connector's slot; the connector then stops with the recovery steps (FailoverTests covers that)")
        failover_notes.append(f"skipped: {reason}")
        log(f"skip: {failover_name}: {reason}")

    for name, inject in faults:
        writer.phase = name
        recoveries = []
        # A cut is held for up to 45 s: once each is enough. There is one standby to promote.
        injections = 1 if name.startswith("silent cut") or name == failover_name else args.injections
        for _ in range(injections):
            time.sleep(rng.uniform(0.5, 3.0))
            log(f"inject: {name}")
            healed_sql, healed_at = inject() or (now_sql(), time.monotonic())
            recovery = flowing_since(healed_sql, healed_at)
            if recovery is None:
                failures.append(f"{name}: the pipeline did not flow again within 90 s")
            else:
                recoveries.append(recovery)
        results.append((name, injections, recoveries))
    writer.phase = "cool-down"
    time.sleep(2)
    writer.running = False
    writer.join(30)
    log(f"load stopped ({writer.restarts} writer reconnect(s)); waiting for the pipeline to drain")

    # Converge: every committed outbox event applied (or 180 s).
    produced_total = int(psql_retry("SELECT count(*) FROM outbox_event")[0])
    end = time.monotonic() + 180
    while time.monotonic() < end:
        if int(psql_retry("SELECT count(DISTINCT event_id) FROM ledger", "service")[0]) >= produced_total:
            break
        time.sleep(0.5)

    # Kafka's contents, duplicates included.
    dump = subprocess.run(in_host("kafka") + [f"{BIN}/KafkaDump"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TG_BOOTSTRAP": kafka.bootstrap, "TG_TOPICS": "events",
                               "TG_PARTITIONS": "6", "TG_EXPECT": str(produced_total), "TG_TIMEOUT_S": "120"})
    in_kafka = Counter(line for line in dump.stdout.splitlines() if line)
    applied_counts = Counter(psql_retry("SELECT event_id FROM ledger", "service"))
    by_phase = {}
    in_database = set()
    for row in psql_retry("SELECT id, phase FROM outbox_event"):
        event_id, phase = row.split("|", 1)
        in_database.add(event_id)
        stats = by_phase.setdefault(phase, [0] * 7)
        copies, applications = in_kafka[event_id], applied_counts[event_id]
        stats[0] += 1
        stats[1] += copies > 0
        stats[2] += copies
        stats[3] += applications > 0
        stats[4] += applications
        stats[5] += applications == 0
        stats[6] += applications > 1

    # Nothing published or applied that the database lacks (after a failover: the promoted standby).
    published_not_in_database = len(set(in_kafka) - in_database)
    applied_not_in_database = len(set(applied_counts) - in_database)
    if published_not_in_database or applied_not_in_database:
        failures.append(f"{published_not_in_database} event(s) in Kafka and {applied_not_in_database} applied that the database "
                        "does not have (a transaction a failover lost, published anyway?)")

    # The last fault ends the run: an administrator drops the slot. The connector must stop loudly, not re-create it.
    log("inject: slot dropped by an administrator")
    connector = pipeline.connector
    psql_retry("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'chaos' AND active_pid IS NOT NULL")
    psql_retry("SELECT pg_drop_replication_slot('chaos') FROM pg_replication_slots WHERE slot_name = 'chaos' AND NOT active")
    status = connector.wait(60)
    recreated = psql_retry("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'chaos'")[0] != "0"
    slot_message = [line for line in connector.text().splitlines() if "slot" in line and "level=error" in line]
    slot_ok = status not in (None, 0) and not recreated and slot_message
    if not slot_ok:
        failures.append(f"slot dropped: connector exit status {status}, slot re-created: {recreated}, "
                        f"error line: {slot_message[-1:] or 'none'}")
    pipeline.stop()
    kafka.child.process.stdin.write(b"quit\n")
    kafka.child.process.stdin.flush()
    if kafka.child.wait(10) is None:
        kafka.child.kill()

    # Secrets: nothing any process printed may contain the password.
    leaked = []
    for name in sorted(os.listdir(LOGS)):
        with open(os.path.join(LOGS, name), "rb") as handle:
            if secret.encode() in handle.read():
                leaked.append(name)
    server_log_has_secret = False
    for server in [PG_DIR] + ([STANDBY["dir"]] if STANDBY else []):
        with open(os.path.join(server, "server.log"), "rb") as handle:
            server_log_has_secret = server_log_has_secret or secret.encode() in handle.read()
    if leaked:
        failures.append(f"the password appears in: {', '.join(leaked)}")

    # The table.
    print()
    print(f"Chaos run, seed {args.seed}: {args.rate} events/s in transactions of 5, {args.injections} injection(s) per fault; "
          "Kafka = librdkafka mock cluster (tailgate dev-kafka, 3 brokers)"
          + ("; consumer b: statement handler (one pipeline per batch)" if args.statement_consumer else ""))
    print("Recovery: from the end of the fault (process restarted, broker up, server back, walsender killed, first connector"
          " killed; for the failover, from the primary's crash) until an event committed after it is in the consumer's ledger.")
    print()
    print("| fault | injected | events produced | in Kafka (unique / total) | applied | lost | applied twice | recovery (median / max) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    totals = [0] * 7
    for name, injected, recoveries in [("warm-up", 0, [])] + results + [("cool-down", 0, [])]:
        produced, kafka_unique, kafka_total, applied, applications, lost, twice = by_phase.get(name, [0] * 7)
        totals = [a + b for a, b in zip(totals, [produced, kafka_unique, kafka_total, applied, applications, lost, twice])]
        recovery = (f"{sorted(recoveries)[len(recoveries) // 2]:.1f} s / {max(recoveries):.1f} s" if recoveries else "–")
        print(f"| {name} | {injected} | {produced:,} | {kafka_unique:,} / {kafka_total:,} | {applied:,} | {lost} | {twice} | {recovery} |")
    produced, kafka_unique, kafka_total, applied, applications, lost, twice = totals
    print(f"| **all** | {sum(r[1] for r in results) + 1} | {produced:,} | {kafka_unique:,} / {kafka_total:,} | {applied:,} | "
          f"{lost} | {twice} | |")
    print(f"| slot dropped by an administrator | 1 | | | | | | connector stopped: "
          f"{'yes, exit ' + str(status) + ', slot not re-created' if slot_ok else 'NO'} |")
    if STANDBY:
        rewound = sum(open(os.path.join(LOGS, name), errors="replace").read().count("event=offsets_rewound")
                      for name in os.listdir(LOGS) if name.startswith("consumer-"))
        failover_notes.append(f"the consumers went back over batches the promoted standby had not received {rewound} time(s)")
    print()
    print(f"Failover: {'; '.join(failover_notes) or 'not injected'}. In Kafka but not in the database: "
          f"{published_not_in_database}; applied but not in the database: {applied_not_in_database}.")
    if cut_details:
        print()
        print("Silent network cuts (--netns): packets between two hosts dropped in the router without an answer. Detected: "
              "from the cut until the first warning/error log line (connector: its own; consumers: either) and, for the "
              "connector, /healthz 503. Recovery as above, from the heal.")
        print()
        print("| cut | held | detected: log | detected: /healthz 503 | recovery |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, _, recoveries in results:
            if name not in cut_details:
                continue
            held, detected = cut_details[name]

            def shown(signal_name):
                if signal_name not in detected:
                    return "n/a"
                return f"{detected[signal_name]:.1f} s" if detected[signal_name] is not None else "not within the cut"
            recovery = f"{recoveries[0]:.1f} s" if recoveries else "NO"
            print(f"| {name.removeprefix('silent cut ')} | {held:.1f} s | {shown('log')} | {shown('/healthz 503')} | {recovery} |")
    print()
    print(f"Secrets: the connector's password appears in {len(leaked)} of {len(os.listdir(LOGS))} process logs"
          f"{' (the PostgreSQL server log has it only because the harness created the role)' if server_log_has_secret else ''}.")
    if lost or twice or produced != applied:
        failures.append(f"{lost} event(s) lost, {twice} applied twice, {applied} of {produced} applied")
    if failures:
        print("\nFAILED:")
        for failure in failures:
            print(f"  - {failure}")
        print(f"logs: {LOGS} (kept)")
        return 1
    print("\nOK: nothing lost, nothing applied twice.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
