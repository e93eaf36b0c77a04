import json

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from sandbox import ALL_LAYERS, ForkServerClient, RunRequest, SandboxUnavailable


@pytest.mark.slow
def test_health_reports_every_check_and_the_sandbox_layers(live):
    response = APIClient().get("/health")
    body = response.json()
    assert set(body["checks"]) == {
        "database", "cache", "broker", "cluster", "progress", "restarts", "sandbox", "memory", "cpu",
    }
    assert body["checks"]["database"]["status"] == "healthy"
    assert body["checks"]["cluster"]["status"] == "healthy"
    assert body["checks"]["progress"]["status"] == "healthy"
    assert body["checks"]["sandbox"]["status"] == "healthy"
    assert set(body["checks"]["sandbox"]["layers"]) == set(ALL_LAYERS)
    assert body["status"] in ("healthy", "degraded") and response.status_code == 200


@pytest.mark.slow
def test_sandbox_check_lists_every_layer_and_ends_with_json(capsys):
    call_command("sandbox_check")
    lines = capsys.readouterr().out.strip().splitlines()
    for name in ALL_LAYERS:
        assert any(line.startswith(name) and "active" in line for line in lines)
    summary = json.loads(lines[-1])
    assert summary["ok"] is True and summary["missing"] == [] and summary["probe"] == "success"
    # The probe wrote and read back a file in its scratch space.
    assert any(line.startswith("scratch space: /scratch/run, 16 MiB") for line in lines), lines


def test_client_refuses_to_run_when_a_required_layer_is_missing(tmp_path):
    client = ForkServerClient(lock_dir=str(tmp_path), required_layers=["fresh_process", "quantum_isolation"])
    try:
        with pytest.raises(SandboxUnavailable, match="quantum_isolation"):
            client.run(RunRequest(execution_id="x", modules={"plugin.py": "def a(p, c):\n    return 1\n"},
                                  entrypoint="plugin.py", handler="a", params={}, timeout_ms=1000, memory_bytes=64 << 20))
    finally:
        client.close()
