"""One node, then two, then four, on one PostgreSQL database and one Redis,
all on this machine: the throughput and latency of synchronous trivial runs
with one node and with two (as ratios), the database connections each
setting holds, and what one run costs the database (transactions and rows,
from pg_stat_database). Prints figures; asserts nothing.

Needs DATABASE_URL (PostgreSQL) and REDIS_URL; the project's way to have
private ones:

    deploy/ci/with-private-servers.sh .venv/bin/python bench/scale.py

Each node is `make run` on a VAR_DIR and port of its own (bench/load.py's
Service), sharing the database, Redis and SECRET_KEY, as
docs/operations.md#several-nodes describes. The client is closed-loop: a
fixed number of callers, each sending its next request when its last is
answered, spread evenly over the nodes.
"""

import argparse
import asyncio
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse

import psycopg

from load import Load, Service, execute_payload, ms_stats, tally, warm_up


class Node(Service):
    """A node of the deployment: `make run` with the shared settings."""

    def __init__(self, var_dir, shared):
        super().__init__(var_dir, cgroup=None)
        self.shared = shared

    @property
    def env(self):
        return {**super().env, **self.shared}


class Connections:
    """The database's client connections, counted every 0.2 s in a thread;
    the peak since `reset`."""

    def __init__(self, admin_url, database):
        self.admin_url = admin_url
        self.database = database
        self.peak = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def count(self):
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            return admin.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s", [self.database]).fetchone()[0]

    def _watch(self):
        while not self.stopped.wait(0.2):
            self.peak = max(self.peak, self.count())

    def reset(self):
        self.peak = self.count()

    def stop(self):
        self.stopped.set()
        self.thread.join()


def database_totals(admin_url, database):
    """Transactions and rows the database has done so far."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT xact_commit + xact_rollback, tup_returned + tup_fetched, tup_inserted, tup_updated, tup_deleted "
            "FROM pg_stat_database WHERE datname = %s", [database]).fetchone()
    return dict(zip(("transactions", "rows_read", "rows_inserted", "rows_updated", "rows_deleted"), row))


async def closed_loop(nodes, callers, seconds):
    """`callers` callers spread over `nodes`, each a sync trivial run after
    another, for `seconds`; every request's record."""
    loads = [Load(node.port, cap=callers) for node in nodes]
    share = [callers // len(nodes) + (1 if i < callers % len(nodes) else 0) for i in range(len(nodes))]
    payload = execute_payload("noop", {}, 30000)

    def request(node):
        return lambda index: ("POST", "/execute", payload, node.key, 30 + 15)

    await asyncio.gather(*(load.closed_loop("noop", n, seconds, request(node))
                           for load, n, node in zip(loads, share, nodes) if n))
    return [record for load in loads for record in load.records]


def phase(name, nodes, callers, seconds, connections, admin_url, database):
    print(f"\n== {name}: {callers} sync callers of bench.noop over {len(nodes)} node(s) for {seconds} s ==", flush=True)
    connections.reset()
    before = database_totals(admin_url, database)
    began = time.monotonic()
    records = asyncio.run(closed_loop(nodes, callers, seconds))
    took = time.monotonic() - began
    after = database_totals(admin_url, database)
    ok = [record for record in records if record.ok]
    latency = ms_stats([record.latency for record in ok])
    not_ok = tally(record.etype or record.fail for record in records if not record.ok)
    figures = {
        "nodes": len(nodes),
        "ok": len(ok),
        "not_ok": not_ok,
        "ok_per_second": round(len(ok) / took, 1),
        "latency_ms": latency,
        "peak_connections": connections.peak,
        "per_run": {key: round((after[key] - before[key]) / max(1, len(ok)), 2) for key in before},
    }
    print(f"ok {figures['ok']} ({figures['ok_per_second']}/s), not ok {not_ok or 0}; "
          f"p50/p95/p99 {latency['p50']} / {latency['p95']} / {latency['p99']} ms", flush=True)
    print(f"database: peak {connections.peak} connections; per run {figures['per_run']}", flush=True)
    return figures


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=16, help="sync callers at once, over all nodes")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--four-nodes-seconds", type=float, default=10,
                        help="how long four nodes are loaded (their connections, not their speed)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    server_url = os.environ.get("DATABASE_URL", "")
    if not server_url.startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit("bench/scale.py needs DATABASE_URL (PostgreSQL) and REDIS_URL: "
                 "deploy/ci/with-private-servers.sh .venv/bin/python bench/scale.py")
    database = f"scale_bench_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    shared = {
        "DATABASE_URL": urllib.parse.urlunsplit(urllib.parse.urlsplit(server_url)._replace(path=f"/{database}")),
        "REDIS_URL": os.environ["REDIS_URL"],
        "SECRET_KEY": secrets.token_urlsafe(40),
    }
    var_dirs, nodes, results = [], [], []
    connections = Connections(server_url, database)

    def start_node():
        var_dir = tempfile.mkdtemp(prefix=f"pex-scale-node{len(nodes)}-")
        var_dirs.append(var_dir)
        node = Node(var_dir, shared)
        nodes.append(node)
        node.start()
        if len(nodes) == 1:
            node.prepare()
        else:
            node.key = nodes[0].key
        warm_up(node)
        print(f"node {len(nodes)} up on 127.0.0.1:{node.port}; database connections now {connections.count()}",
              flush=True)
        return node

    try:
        start_node()
        time.sleep(2)
        print(f"idle, one node: {connections.count()} connections", flush=True)
        results.append(phase("one node", nodes[:1], args.callers, args.seconds, connections, server_url, database))
        start_node()
        time.sleep(2)
        print(f"idle, two nodes: {connections.count()} connections", flush=True)
        results.append(phase("two nodes", nodes[:2], args.callers, args.seconds, connections, server_url, database))
        start_node()
        start_node()
        time.sleep(2)
        print(f"idle, four nodes: {connections.count()} connections", flush=True)
        results.append(phase("four nodes", nodes, args.callers, args.four_nodes_seconds, connections, server_url,
                             database))
        one, two = results[0], results[1]
        print("\n== two nodes against one (same machine, same callers) ==", flush=True)
        print(f"throughput ×{two['ok_per_second'] / one['ok_per_second']:.2f}; "
              f"p50 ×{two['latency_ms']['p50'] / one['latency_ms']['p50']:.2f}; "
              f"p99 ×{two['latency_ms']['p99'] / one['latency_ms']['p99']:.2f}", flush=True)
        print("peak database connections by nodes: "
              + ", ".join(f"{r['nodes']}: {r['peak_connections']}" for r in results), flush=True)
    finally:
        connections.stop()
        for node in nodes:
            node.stop()
        for var_dir in var_dirs:
            shutil.rmtree(var_dir, ignore_errors=True)
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


if __name__ == "__main__":
    main()
