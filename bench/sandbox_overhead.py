"""What a sandboxed run costs, against the bare fork floor and a fresh interpreter.

All three measured in this one process, one after the other:
  (1) floor: os.fork() + os._exit() + os.waitpid() from this process;
  (2) a trivial action through the sandbox runner with every layer on
      (fork-server, namespaces, read-only root, uid, rlimits, Landlock,
      seccomp, cgroups), round trip from the host's point of view;
  (3) the same action by spawning a fresh interpreter per run (the naive
      baseline: `subprocess.run([python, "-c", ...])`).
Prints p50/p95/p99 in ms, runs per second and the ratios (2)/(1) and (3)/(2),
first back to back (the strictest: each run's process teardown and the next
spare's fork compete with it), then with runs spaced --gap-ms apart, as a
worker's runs are by the database work between them. The runs/s of the
spaced lines count only the time inside the runs.

    .venv/bin/python bench/sandbox_overhead.py [--runs 300]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sandbox import ALL_LAYERS, ForkServerClient, RunRequest  # noqa: E402

PLUGIN = "def add(params, ctx):\n    return {'sum': params['a'] + params['b']}\n"
FRESH_INTERPRETER = (
    "import json, sys\n"
    "request = json.loads(sys.argv[1])\n"
    "namespace = {}\n"
    "exec(compile(request['source'], 'plugin.py', 'exec'), namespace)\n"
    "print(json.dumps(namespace['add'](request['params'], None)))\n"
)


def percentiles(samples_ms):
    ordered = sorted(samples_ms)

    def pick(q):
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {"p50": statistics.median(ordered), "p95": pick(0.95), "p99": pick(0.99)}


def measure(label, runs, once, gap_s=0.0):
    for _ in range(min(20, runs)):
        once()  # warm-up
    samples = []
    busy = 0.0
    for _ in range(runs):
        if gap_s:
            time.sleep(gap_s)
        t0 = time.perf_counter()
        once()
        samples.append((time.perf_counter() - t0) * 1000)
        busy += time.perf_counter() - t0
    total = busy
    stats = percentiles(samples)
    stats["runs_per_s"] = runs / total
    print(f"{label:<44} p50 {stats['p50']:7.3f} ms  p95 {stats['p95']:7.3f} ms  "
          f"p99 {stats['p99']:7.3f} ms  {stats['runs_per_s']:8.1f} runs/s")
    return stats


def bare_fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--gap-ms", type=float, default=5.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as lock_dir:
        client = ForkServerClient(lock_dir=lock_dir, required_layers=ALL_LAYERS)
        client.start()
        missing = client.missing_layers()
        if missing:
            sys.exit(f"layers missing on this host, the comparison would be unfair: {missing}")
        request = RunRequest(execution_id="bench", modules={"plugin.py": PLUGIN}, entrypoint="plugin.py",
                             handler="add", params={"a": 2, "b": 3}, timeout_ms=5000, memory_bytes=256 << 20)

        def sandboxed():
            result = client.run(request)
            assert result.status == "success" and result.result == {"sum": 5}, result

        python = os.path.realpath(sys.executable)
        payload = json.dumps({"source": PLUGIN, "params": {"a": 2, "b": 3}})

        def fresh_interpreter():
            out = subprocess.run([python, "-c", FRESH_INTERPRETER, payload], capture_output=True, text=True, env={})
            assert json.loads(out.stdout) == {"sum": 5}, out.stderr

        print(f"{args.runs} runs each; layers on: {', '.join(sorted(n for n, s in client.layers.items() if s['active']))}")
        print("back to back:")
        floor = measure("(1) floor: fork + _exit + waitpid", args.runs, bare_fork)
        sandbox = measure("(2) sandboxed run, every layer", args.runs, sandboxed)
        fresh = measure("(3) fresh interpreter per run", args.runs, fresh_interpreter)
        gap = args.gap_ms / 1000
        print(f"spaced {args.gap_ms:g} ms apart:")
        spaced_floor = measure("(1) floor: fork + _exit + waitpid", args.runs, bare_fork, gap)
        spaced_sandbox = measure("(2) sandboxed run, every layer", args.runs, sandboxed, gap)
        spaced_fresh = measure("(3) fresh interpreter per run", args.runs, fresh_interpreter, gap)
        client.close()

    for label, f, s, i in (("back to back", floor, sandbox, fresh), ("spaced", spaced_floor, spaced_sandbox, spaced_fresh)):
        print(f"{label:<13} (2)/(1) p50 ratio: {s['p50'] / f['p50']:.2f}x (sandbox over the bare fork floor); "
              f"(3)/(2) p50 ratio: {i['p50'] / s['p50']:.2f}x (fresh interpreter over the sandbox)")


if __name__ == "__main__":
    main()
