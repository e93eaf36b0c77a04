"""The sandbox: a warm fork-server per worker slot and a fresh, confined child
per run. Nothing here imports Django or any part of the service.

This module is the whole interface the service uses: start a
`ForkServerClient`, hand it a `RunRequest` and an egress handler, get a
`RunResult`; `SandboxUnavailable` when a required layer is missing;
`ALL_LAYERS` and `describe_host()` to report what the host supports;
`seccomp_allowlist()`, the system calls a run may make; `DEFAULT_SCRATCH_MB`
and `DEFAULT_MAX_SCRATCH_MB`, the sizes of a run's scratch space;
`make_private_parent` for the directory of vendored package trees;
`RUNTIMES`, what a `RunRequest.runtime` may be ("node" runs JavaScript).
`child/` holds what runs inside the fork-server and its children.
"""

from .child.confine import ALL_LAYERS, describe_host, seccomp_allowlist
from .child.forkserver import NODE_SPARES, SPARES
from .client import (
    DEFAULT_MAX_SCRATCH_MB,
    DEFAULT_SCRATCH_MB,
    RUNTIMES,
    ForkServerClient,
    RunRequest,
    RunResult,
    SandboxUnavailable,
    make_private_parent,
)

__all__ = ["ALL_LAYERS", "DEFAULT_MAX_SCRATCH_MB", "DEFAULT_SCRATCH_MB", "NODE_SPARES", "RUNTIMES", "SPARES",
           "ForkServerClient", "RunRequest", "RunResult", "SandboxUnavailable", "describe_host", "make_private_parent",
           "seccomp_allowlist"]
