"""A manifest's `limits.memoryMb`, `limits.scratchMb` and an action's
`timeoutMs` are honoured, never above the operator's (or the tier's) maxima."""

import time

import pytest

from executions.models import Execution
from executions.runner import memory_limit_mb, scratch_mb
from executions.submission import effective_timeout_ms
from plugins.manifest import ManifestError
from tests.factories import install_source

ALLOCATES = """
def allocate(params, ctx):
    blob = bytearray(params["mb"] * 1024 * 1024)
    return {"allocated": len(blob)}
"""

SPINS = """
def spin(params, ctx):
    while True:
        pass
"""


@pytest.mark.django_db
def test_memory_limit_is_the_manifest_s_within_the_operator_and_tier_ceilings(org, settings):
    settings.MAX_MEMORY_MB = 512
    assert memory_limit_mb(org, {"limits": {"memoryMb": 256}}) == 256
    assert memory_limit_mb(org, {"limits": {"memoryMb": 4096}}) == 512
    assert memory_limit_mb(org, {"limits": {}}) == 512
    assert memory_limit_mb(org, {}) == 512
    org.tier.max_memory_mb = 128
    assert memory_limit_mb(org, {"limits": {"memoryMb": 256}}) == 128
    assert memory_limit_mb(org, {"limits": {"memoryMb": 64}}) == 64
    # A tier cannot lift the operator's ceiling either.
    org.tier.max_memory_mb = 2048
    assert memory_limit_mb(org, {"limits": {"memoryMb": 1024}}) == 512


def test_scratch_space_is_the_manifest_s_within_the_operator_s_ceiling(settings):
    settings.SANDBOX_MAX_SCRATCH_MB = 64
    assert scratch_mb({}) == 16
    assert scratch_mb({"limits": {"scratchMb": 4}}) == 4
    # Uploaded under a higher ceiling, run under the lower one.
    assert scratch_mb({"limits": {"scratchMb": 128}}) == 64


@pytest.mark.django_db
def test_an_upload_asking_for_more_scratch_than_the_ceiling_is_refused(settings):
    settings.SANDBOX_MAX_SCRATCH_MB = 32
    with pytest.raises(ManifestError) as refused:
        install_source("hoarder", ALLOCATES, {"allocate": "allocate"}, limits={"scratchMb": 64})
    assert refused.value.errors == [{"field": "limits.scratchMb", "message": "64 MiB is over this service's ceiling of 32 MiB"}]


USES_SCRATCH = """
import os, tempfile

def store(params, ctx):
    before = os.listdir(ctx.scratch_dir)
    with tempfile.NamedTemporaryFile("w", dir=ctx.scratch_dir, suffix=".txt", delete=False) as handle:
        handle.write(params["text"])
    with open(handle.name) as stored:
        return {"before": before, "after": os.listdir(ctx.scratch_dir), "read": stored.read(),
                "tmpdir": tempfile.gettempdir() == ctx.scratch_dir}

def fill(params, ctx):
    with open(os.path.join(ctx.scratch_dir, "big"), "wb") as handle:
        while True:
            handle.write(b"x" * 65536)
"""


@pytest.mark.slow
def test_a_plugin_uses_its_scratch_space_through_the_api(live, api):
    install_source("scratchy", USES_SCRATCH, {"store": "store", "fill": "fill"}, limits={"scratchMb": 4})

    def execute(action, **params):
        return api.post("/execute", {"pluginId": "scratchy", "actionName": action, "params": params}, format="json")

    for text in ("first", "second"):
        stored = execute("store", text=text)
        assert stored.status_code == 200, stored.json()
        result = stored.json()["result"]
        assert result["before"] == [] and len(result["after"]) == 1 and result["read"] == text and result["tmpdir"]
    full = execute("fill")
    assert full.status_code == 500 and full.json()["error"]["type"] == "PLUGIN_ERROR", full.json()
    assert full.json()["error"]["message"].startswith("the run's scratch space (4 MiB) is full"), full.json()


def test_timeout_is_the_request_s_or_the_action_s_within_the_operator_maximum(settings):
    settings.DEFAULT_TIMEOUT_MS = 30000
    settings.MAX_TIMEOUT_MS = 60000
    assert effective_timeout_ms(None, {}) == 30000
    assert effective_timeout_ms(None, {"timeoutMs": 10000}) == 10000
    assert effective_timeout_ms(2000, {"timeoutMs": 10000}) == 2000
    assert effective_timeout_ms(None, {"timeoutMs": 300000}) == 60000
    assert effective_timeout_ms(120000, {}) == 60000


@pytest.mark.slow
def test_the_sandbox_enforces_the_capped_limits(live, api, settings):
    settings.MAX_MEMORY_MB = 512
    install_source("small", ALLOCATES, {"allocate": "allocate"}, limits={"memoryMb": 64})
    install_source("greedy", ALLOCATES, {"allocate": "allocate"}, limits={"memoryMb": 1024})
    install_source("slow", SPINS, {"spin": {"handler": "spin", "params": {"type": "object"}, "timeoutMs": 300000}})

    def execute(plugin, action="allocate", **params):
        return api.post("/execute", {"pluginId": plugin, "actionName": action, "params": params}, format="json")

    # The manifest asks for less than the ceiling: it gets less.
    small = execute("small", mb=100)
    assert small.status_code == 500 and small.json()["error"]["type"] == "MEMORY_LIMIT_EXCEEDED", small.json()
    assert Execution.objects.get(pk=small.json()["executionId"]).memory_limit_mb == 64
    assert execute("greedy", mb=100).status_code == 200

    # The manifest asks for more than the operator allows: it gets the ceiling.
    settings.MAX_MEMORY_MB = 96
    greedy = execute("greedy", mb=200)
    assert greedy.json()["error"]["type"] == "MEMORY_LIMIT_EXCEEDED", greedy.json()
    assert Execution.objects.get(pk=greedy.json()["executionId"]).memory_limit_mb == 96

    # An action's timeoutMs above the operator's maximum is cut to it.
    settings.MAX_TIMEOUT_MS = 1500
    started = time.monotonic()
    slow = execute("slow", action="spin")
    assert slow.status_code == 504 and slow.json()["error"]["type"] == "TIMEOUT"
    assert time.monotonic() - started < 5
    assert Execution.objects.get(pk=slow.json()["executionId"]).timeout_ms == 1500
