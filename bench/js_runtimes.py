"""How a JavaScript run could be started, measured side by side with a Python run.

Node.js cannot be forked once V8 is running, so a run cannot start the way a
Python run does (a fork of a warm fork-server). The candidates, all measured in
this one process, one after the other, with the same trivial action
(`add(params) -> {sum}`) and the same JSON request/answer over a pipe:

  python      a Python run through the real sandbox (every layer on): the
              figure to stay within 2x of;
  node-sandbox  a JavaScript run through the real sandbox (runtime "node",
              every layer on): a confined Node process started ahead by the
              fork-server, used once; runs back to back, so a run may wait
              for the spare the previous one left starting; the first run
              of a fork-server (which starts Node then) is reported apart;
  node-paced  the same with 150 ms between runs: each finds its spare ready;
  node-fresh  a Node process started for each run and used once (spawned
              ahead of its run, as the Python spares are; latency counts from
              the request to the answer, CPU counts the whole process);
  node-vm     one warm Node process, a fresh `node:vm` context per run;
  quickjs     a fork of a warm Python process that imported QuickJS, a fresh
              QuickJS context per run (the engine embedded in the child).

Only `python` and `node-sandbox` have the sandbox's layers around them; the
others are the bare cost of the runtime, to which the layers add what they
add to a Python run.
CPU per run is read from the kernel (children's rusage, or /proc/<pid>/stat
of the warm Node process) and includes start-up where a run pays for it.

    .venv/bin/python bench/js_runtimes.py [--runs 200] [--json FILE]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sandbox import ALL_LAYERS, ForkServerClient, RunRequest  # noqa: E402

PYTHON_PLUGIN = "def add(params, ctx):\n    return {'sum': params['a'] + params['b']}\n"
JS_PLUGIN = "exports.add = async (params, ctx) => ({ sum: params.a + params.b });\n"
PARAMS = {"a": 2, "b": 3}

# One request per line on stdin, one answer per line on stdout. With --once
# the process answers a single request and exits (a process used once).
NODE_RUNNER = r"""
const vm = require('node:vm');
const readline = require('node:readline');
const once = process.argv.includes('--once');
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  const request = JSON.parse(line);
  const sandbox = { exports: {} };
  vm.createContext(sandbox);
  vm.runInContext(request.source, sandbox, { filename: 'plugin.js' });
  const result = await sandbox.exports[request.action](request.params, {});
  process.stdout.write(JSON.stringify({ result }) + '\n');
  if (once) process.exit(0);
});
"""


def percentiles(samples_ms):
    ordered = sorted(samples_ms)

    def pick(q):
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {"p50": statistics.median(ordered), "p95": pick(0.95), "p99": pick(0.99)}


def children_cpu_ms():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def process_cpu_ms(pid, with_reaped_children=False):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = fields[11:15] if with_reaped_children else fields[11:13]
    return sum(int(tick) for tick in ticks) * 1000 / os.sysconf("SC_CLK_TCK")


def report(label, latencies_ms, cpu_ms_per_run):
    figures = {**percentiles(latencies_ms), "cpu_ms": cpu_ms_per_run}
    print(f"{label:12s} p50 {figures['p50']:7.2f}  p95 {figures['p95']:7.2f}  p99 {figures['p99']:7.2f} ms"
          f"   CPU {cpu_ms_per_run:6.2f} ms per run")
    return figures


def measure_sandbox(runs, request, first_runs=None, pause=0.0):
    """Latencies of sandboxed runs, and CPU per run: the fork-server's own
    CPU and that of the children it reaped (its spares, used once each).
    `first_runs`, a list, gets the latency of the fork-server's first run."""
    lock_dir = tempfile.mkdtemp(prefix="js-bench-locks-")
    # uids of their own: runs of a service on this machine may hold the usual ones
    client = ForkServerClient(lock_dir=lock_dir, slots=4, uid_base=310000, required_layers=ALL_LAYERS)
    try:
        client.start()
        started = time.perf_counter()
        assert client.run(request).result == {"sum": 5}
        if first_runs is not None:
            first_runs.append((time.perf_counter() - started) * 1000)
        for _ in range(20):
            client.run(request)
        # the namespace's init, i.e. the fork-server, as the host sees it
        outer = client.process.pid
        with open(f"/proc/{outer}/task/{outer}/children") as children:
            forkserver_pid = int(children.read().split()[0])
        cpu_before = process_cpu_ms(forkserver_pid, with_reaped_children=True)
        latencies = []
        for _ in range(runs):
            time.sleep(pause)
            started = time.perf_counter()
            outcome = client.run(request)
            latencies.append((time.perf_counter() - started) * 1000)
            assert outcome.result == {"sum": 5}, outcome
        # the last runs' children may not be reaped yet: let them go
        time.sleep(0.2)
        cpu = process_cpu_ms(forkserver_pid, with_reaped_children=True) - cpu_before
    finally:
        client.close()
        shutil.rmtree(lock_dir, ignore_errors=True)
    return latencies, cpu / runs


def measure_python(runs):
    return measure_sandbox(runs, RunRequest(execution_id="bench", modules={"plugin.py": PYTHON_PLUGIN},
                                            entrypoint="plugin.py", handler="add", params=PARAMS, timeout_ms=5000,
                                            memory_bytes=256 << 20))


def measure_node_sandbox(runs, first_runs=None, pause=0.0):
    return measure_sandbox(runs, RunRequest(execution_id="bench", modules={"plugin.js": JS_PLUGIN},
                                            entrypoint="plugin.js", handler="add", params=PARAMS, timeout_ms=5000,
                                            memory_bytes=256 << 20, runtime="node"), first_runs, pause)


def node_request():
    return json.dumps({"source": JS_PLUGIN, "action": "add", "params": PARAMS}) + "\n"


def measure_node_fresh(node, runner, runs):
    latencies = []
    cpu_before = children_cpu_ms()
    for _ in range(runs):
        process = subprocess.Popen([node, runner, "--once"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # Ready before its run, as a spare is: the first answer proves start-up is over.
        time.sleep(0.08)
        started = time.perf_counter()
        process.stdin.write(node_request())
        process.stdin.flush()
        answer = json.loads(process.stdout.readline())
        latencies.append((time.perf_counter() - started) * 1000)
        process.wait()
        assert answer["result"] == {"sum": 5}, answer
    return latencies, (children_cpu_ms() - cpu_before) / runs


def measure_node_vm(node, runner, runs):
    process = subprocess.Popen([node, runner], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        def once():
            process.stdin.write(node_request())
            process.stdin.flush()
            return json.loads(process.stdout.readline())

        for _ in range(20):
            once()
        cpu_before = process_cpu_ms(process.pid)
        latencies = []
        for _ in range(runs):
            started = time.perf_counter()
            answer = once()
            latencies.append((time.perf_counter() - started) * 1000)
            assert answer["result"] == {"sum": 5}, answer
        return latencies, (process_cpu_ms(process.pid) - cpu_before) / runs
    finally:
        process.kill()
        process.wait()


def measure_quickjs(runs):
    import quickjs  # noqa: F401 — imported before the forks, as a fork-server would

    def run_in_fork():
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            context = quickjs.Context()
            context.eval("var exports = {};")
            context.eval(JS_PLUGIN)
            context.eval(f"var answer; Promise.resolve(exports.add({json.dumps(PARAMS)}, {{}})).then(r => answer = r);")
            while context.execute_pending_job():
                pass  # settles the handler's promise
            answer = context.eval("JSON.stringify({result: answer})")
            os.write(write_end, answer.encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as answer_pipe:
            answer = json.loads(answer_pipe.read())
        os.waitpid(pid, 0)
        return answer

    for _ in range(20):
        run_in_fork()
    cpu_before = children_cpu_ms()
    latencies = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = run_in_fork()
        latencies.append((time.perf_counter() - started) * 1000)
        assert answer["result"] == {"sum": 5}, answer
    return latencies, (children_cpu_ms() - cpu_before) / runs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    node = shutil.which("node") or shutil.which("nodejs")
    with tempfile.TemporaryDirectory(prefix="js-bench-") as scratch:
        runner = os.path.join(scratch, "runner.js")
        with open(runner, "w") as runner_file:
            runner_file.write(NODE_RUNNER)
        figures = {}
        print(f"{args.runs} runs each; Node {subprocess.check_output([node, '--version'], text=True).strip()}")
        figures["python"] = report("python", *measure_python(args.runs))
        first_runs = []
        figures["node-sandbox"] = report("node-sandbox", *measure_node_sandbox(args.runs, first_runs))
        figures["node-sandbox"]["first_run_ms"] = first_runs[0]
        print(f"{'':12s} the fork-server's first Node run (Node started then): {first_runs[0]:.2f} ms")
        figures["node-paced"] = report("node-paced", *measure_node_sandbox(args.runs, pause=0.15))
        figures["node-fresh"] = report("node-fresh", *measure_node_fresh(node, runner, args.runs))
        figures["node-vm"] = report("node-vm", *measure_node_vm(node, runner, args.runs))
        figures["quickjs"] = report("quickjs", *measure_quickjs(args.runs))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)


if __name__ == "__main__":
    main()
