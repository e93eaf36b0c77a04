"""End-to-end latency and throughput of POST /execute on the embedded default.

Starts its own service in a temporary VAR_DIR (SQLite + django-q2 ORM broker,
gunicorn and the three priority clusters, exactly as `make run`), then measures:
  (a) sync runs that miss the cache (params differ every call), one client;
  (b) cache hits (the same params again), one client;
  (c) throughput of sync runs with --clients concurrent clients;
  (d) the naive baseline, in this process: the same action run by spawning a
      fresh interpreter per call, with no service, quota, queue or sandbox.
Prints p50/p95/p99 in ms, requests per second, and the ratio (a)/(d).

    .venv/bin/python bench/api_latency.py [--requests 200] [--clients 4]
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
NAIVE = (
    "import json, sys, importlib.util\n"
    "spec = importlib.util.spec_from_file_location('plugin', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "print(json.dumps(module.describe(json.loads(sys.argv[2]), None)))\n"
)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def summary(label, samples_ms, elapsed_s):
    ordered = sorted(samples_ms)

    def pick(q):
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    stats = {"p50": statistics.median(ordered), "p95": pick(0.95), "p99": pick(0.99), "rps": len(ordered) / elapsed_s}
    print(f"{label:<46} p50 {stats['p50']:8.2f} ms  p95 {stats['p95']:8.2f} ms  p99 {stats['p99']:8.2f} ms  "
          f"{stats['rps']:7.1f} req/s")
    return stats


class Service:
    def __init__(self, var_dir, port):
        self.env = {**os.environ, "VAR_DIR": var_dir, "PORT": str(port), "BIND_ADDRESS": "127.0.0.1",
                    "DATABASE_URL": "", "WEB_WORKERS": "2"}
        self.port = port
        self.processes = []

    def manage(self, *args):
        return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def start(self):
        self.manage("migrate", "--noinput", "-v", "0")
        key = self.manage("seed_demo", "--no-admin").strip().splitlines()[-1]
        self.processes.append(subprocess.Popen(
            [os.path.join(ROOT, ".venv", "bin", "gunicorn"), "-c", "executor_project/gunicorn.conf.py",
             "executor_project.wsgi"], cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for cluster in ("executor-high", "executor-medium", "executor-low"):
            self.processes.append(subprocess.Popen(
                [PYTHON, "manage.py", "qcluster"], cwd=ROOT, env={**self.env, "Q_CLUSTER_NAME": cluster},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                    if json.load(response)["checks"]["cluster"]["clusters"] >= 3:
                        return key
            except (urllib.error.URLError, OSError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError("the service did not come up")

    def stop(self):
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def execute(port, key, params):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/execute",
        data=json.dumps({"pluginId": "stats", "actionName": "describe", "params": params}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    elapsed = (time.perf_counter() - started) * 1000
    assert body["success"], body
    return elapsed, body


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as var_dir:
        service = Service(var_dir, free_port())
        key = service.start()
        try:
            counter = iter(range(10**9))
            for _ in range(30):  # every worker starts its fork-server
                execute(service.port, key, {"values": [next(counter), 1, 2]})

            started = time.perf_counter()
            misses = [execute(service.port, key, {"values": [next(counter), 1, 2]})[0] for _ in range(args.requests)]
            a = summary("(a) sync run, cache miss, 1 client", misses, time.perf_counter() - started)
            started = time.perf_counter()
            hits = [execute(service.port, key, {"values": [7, 1, 2]})[0] for _ in range(args.requests)]
            summary("(b) cache hit, 1 client", hits, time.perf_counter() - started)

            lock = threading.Lock()
            concurrent = []

            def client():
                for _ in range(args.requests // args.clients):
                    with lock:
                        value = next(counter)
                    concurrent.append(execute(service.port, key, {"values": [value, 3, 4]})[0])

            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            summary(f"(c) sync runs, {args.clients} concurrent clients", concurrent, time.perf_counter() - started)
        finally:
            service.stop()

    plugin = os.path.join(ROOT, "examples", "stats", "plugin.py")
    naive = []
    started = time.perf_counter()
    for index in range(min(args.requests, 100)):
        t0 = time.perf_counter()
        out = subprocess.run([PYTHON, "-c", NAIVE, plugin, json.dumps({"values": [index, 1, 2]})],
                             capture_output=True, text=True, env={})
        naive.append((time.perf_counter() - t0) * 1000)
        assert re.search(r'"count"', out.stdout), out.stderr
    d = summary("(d) naive: fresh interpreter per call, no service", naive, time.perf_counter() - started)
    print(f"(a)/(d) p50 ratio: {a['p50'] / d['p50']:.2f}x  (the whole service path over a bare subprocess call)")


if __name__ == "__main__":
    main()
