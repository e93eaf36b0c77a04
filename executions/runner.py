"""Runs one execution in the sandbox from a worker process.

Each worker process keeps one fork-server (and so one sandbox slot) for its
whole life; the fork-server is started on first use and replaced if it dies.
"""

import atexit
import functools
import threading

from django.conf import settings

from plugins.manifest import ManifestError, runtime_of
from plugins.packages import package_tree, shared_site_packages
from plugins.services import plugin_modules
from quotas.secrets import SecretUnreadable, stored_secrets
from sandbox import (
    ALL_LAYERS,
    DEFAULT_SCRATCH_MB,
    ForkServerClient,
    RunRequest,
    RunResult,
    SandboxUnavailable,
    describe_host,
)

from .egress_gateway import EgressGateway
from .redaction import Redactor

_client = None
_client_lock = threading.Lock()


def required_layers():
    configured = [name.lower() for name in settings.SANDBOX_REQUIRED_LAYERS]
    if configured == ["all"]:
        return list(ALL_LAYERS)
    if configured in ([], ["none"]):
        return []
    return configured


@functools.cache
def host_layers():
    """The sandbox layers this host supports, detected once per process."""
    return describe_host()["layers"]


def missing_host_layers():
    layers = host_layers()
    return [name for name in required_layers() if not layers.get(name, (False, ""))[0]]


def sandbox_client():
    global _client
    with _client_lock:
        if _client is None:
            _client = ForkServerClient(
                lock_dir=settings.SANDBOX_LOCK_DIR,
                slots=settings.SANDBOX_SLOTS,
                uid_base=settings.SANDBOX_UID_BASE,
                required_layers=required_layers(),
                max_scratch_mb=settings.SANDBOX_MAX_SCRATCH_MB,
                vendored_packages_dir=settings.PLUGIN_PACKAGES_DIR,
                shared_packages_dir=shared_site_packages(),
            )
            atexit.register(_client.close)
        return _client


def close_sandbox_client():
    """Stop this process's fork-server, releasing its slot (uid lock, cgroups)."""
    global _client
    with _client_lock:
        if _client is not None:
            _client.close()
            _client = None


def memory_limit_mb(organization, manifest):
    """The manifest may ask for less or more, never above the operator's or tier's ceiling."""
    return plugins_own_memory_limit_mb(manifest, ceiling=organization.tier.max_memory_mb or settings.MAX_MEMORY_MB)


def plugins_own_memory_limit_mb(manifest, ceiling=None):
    """What the manifest asks for under the operator's ceiling (and `ceiling`,
    a tier's, when given): a run's memory limit when no tier lowers it."""
    ceiling = min(ceiling or settings.MAX_MEMORY_MB, settings.MAX_MEMORY_MB)
    requested = (manifest.get("limits") or {}).get("memoryMb")
    return min(requested, ceiling) if requested else ceiling


def scratch_mb(manifest):
    """The run's scratch space: what the manifest asks for (checked against
    SANDBOX_MAX_SCRATCH_MB at upload), never above that ceiling as it is now."""
    requested = (manifest.get("limits") or {}).get("scratchMb") or DEFAULT_SCRATCH_MB
    return min(requested, settings.SANDBOX_MAX_SCRATCH_MB)


def secrets_for_run(organization, plugin_version, request_secrets):
    """(available, granted): the organization's stored secrets overridden by
    the request's own values, decrypted only for the names the manifest
    declares and the organization granted to this plugin; and of those,
    what the plugin receives. Redaction covers all of `available`."""
    declared = set(plugin_version.manifest.get("secrets") or [])
    available = {**stored_secrets(organization, declared, plugin_version.plugin_id), **request_secrets}
    granted = {name: value for name, value in available.items() if name in declared}
    return available, granted


def run_in_sandbox(execution, secrets, *, timeout_ms=None, attempt=1):
    """Run the execution's action once; returns a RunResult with secrets redacted."""
    version = execution.plugin_version
    action = version.manifest["actions"][execution.action]
    try:
        available, granted = secrets_for_run(execution.organization, version, secrets)
    except SecretUnreadable as error:
        return RunResult(status="error", error_type="INTERNAL_ERROR", message=str(error))
    # The sandbox client redacts the child's texts before it cuts them to
    # their caps; the result is redacted here, once it has passed its checks.
    redactor = Redactor(available.values())
    try:
        tree = package_tree(version)
    except (ManifestError, OSError) as error:
        return RunResult(status="error", error_type="INTERNAL_ERROR",
                         message=f"the plugin's vendored packages could not be unpacked on this node: {error}")
    request = RunRequest(
        execution_id=str(execution.id),
        actor_id=execution.actor_id,
        modules=plugin_modules(version),
        runtime=runtime_of(version.manifest),
        adapter=version.manifest.get("adapter", ""),
        settings=version.manifest.get("settings") or {},
        package_tree=tree,
        entrypoint=version.manifest["entrypoint"],
        handler=action["handler"],
        params=execution.params,
        secrets=granted,
        timeout_ms=timeout_ms or execution.timeout_ms,
        attempt=attempt,
        memory_bytes=execution.memory_limit_mb * 1024 * 1024,
        scratch_mb=scratch_mb(version.manifest),
        max_result_bytes=settings.MAX_RESULT_BYTES,
        max_log_bytes=settings.MAX_LOG_BYTES,
        max_log_lines=settings.MAX_LOG_LINES,
        redactor=redactor,
    )
    try:
        outcome = sandbox_client().run(request, egress_handler=EgressGateway(execution, granted))
    except SandboxUnavailable as error:
        outcome = RunResult(status="error", error_type="SANDBOX_UNAVAILABLE", message=str(error))
    outcome.result_json = redactor.json_text(outcome.result_json)
    return outcome
