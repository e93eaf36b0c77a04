import json
import tempfile

from django.conf import settings
from django.core.management.base import BaseCommand

from executions.runner import required_layers
from sandbox import ALL_LAYERS, DEFAULT_SCRATCH_MB, ForkServerClient, RunRequest, SandboxUnavailable, seccomp_allowlist

# Echoes its value through a file in its scratch space (when it has one).
PROBE = """
import os
def probe(params, ctx):
    if ctx.scratch_dir is None:
        return {"echo": params["value"], "scratch": None}
    path = os.path.join(ctx.scratch_dir, "probe")
    with open(path, "w") as handle:
        handle.write(str(params["value"]))
    with open(path) as handle:
        return {"echo": int(handle.read()), "scratch": ctx.scratch_dir}
"""


class Command(BaseCommand):
    help = (
        "Start a real fork-server, print each isolation layer and whether it is active, the system calls "
        "seccomp allows, run a probe action through it, and exit non-zero when a required layer is missing."
    )

    def handle(self, *args, **options):
        required = required_layers()
        with tempfile.TemporaryDirectory() as lock_dir:
            client = ForkServerClient(lock_dir=lock_dir, required_layers=required,
                                      max_scratch_mb=settings.SANDBOX_MAX_SCRATCH_MB)
            try:
                # Progress on stderr: stdout is the report, its last line read by scripts.
                self.stderr.write("Starting a fork-server and entering its isolation layers…")
                client.start()
                layers = client.layers
                node = client.node_state
                probe = None
                try:
                    self.stderr.write("Running a probe action in a sandboxed child…")
                    probe = client.run(
                        RunRequest(
                            execution_id="sandbox-check", modules={"plugin.py": PROBE}, entrypoint="plugin.py",
                            handler="probe", params={"value": 42}, timeout_ms=5000, memory_bytes=128 << 20,
                        )
                    )
                except SandboxUnavailable:
                    pass
            finally:
                client.close()
        width = max(len(name) for name in ALL_LAYERS)
        for name in ALL_LAYERS:
            state = layers.get(name, {"active": False, "reason": "not reported"})
            mark = "active " if state["active"] else "MISSING"
            need = "required" if name in required else "optional"
            reason = f"  ({state['reason']})" if state.get("reason") else ""
            self.stdout.write(f"{name:<{width}}  {mark}  {need}{reason}")
        javascript = "available" if node["available"] else f"refused ({node['reason']})"
        self.stdout.write(f"JavaScript plugins (runtime node): {javascript}")
        allowed = seccomp_allowlist()
        self.stdout.write(f"seccomp allowlist ({len(allowed)} entries; any other system call fails with EPERM):")
        for entry in allowed:
            self.stdout.write(f"  {entry}")
        missing = [name for name in required if not layers.get(name, {}).get("active")]
        probe_ok = probe is not None and probe.status == "success" and (probe.result or {}).get("echo") == 42
        if probe is not None:
            self.stdout.write(f"probe run: {probe.status} in {probe.wall_ms:.1f} ms" + (f" ({probe.error_type}: {probe.message})" if probe.error_type else ""))
        if probe_ok:
            scratch = probe.result["scratch"]
            self.stdout.write(
                f"scratch space: {scratch}, {DEFAULT_SCRATCH_MB} MiB unless the manifest asks for up to "
                f"{settings.SANDBOX_MAX_SCRATCH_MB} MiB" if scratch else "scratch space: none (needs the readonly_root layer)"
            )
        summary = {
            "ok": not missing and probe_ok,
            "active": sorted(n for n in ALL_LAYERS if layers.get(n, {}).get("active")),
            "missing": missing,
            "node": node["available"],
            "probe": probe.status if probe is not None else "refused",
        }
        self.stdout.write(json.dumps(summary))
        if not summary["ok"]:
            raise SystemExit(1)
