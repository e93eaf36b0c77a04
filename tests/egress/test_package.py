"""Package hygiene: the public interface and the absence of Django/project imports."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import egress

ROOT = Path(__file__).resolve().parents[2]

# The project's own top-level packages (its Django apps, settings, sandbox).
PROJECT_PACKAGES = frozenset(p.parent.name for p in ROOT.glob("*/__init__.py")) - {"egress", "tests"}
# Top-level packages egress must never import.
FORBIDDEN_PACKAGES = PROJECT_PACKAGES | {"django", "rest_framework", "requests"}

# By name: the package attribute ``egress.fetch`` is the function, not the module.
SUBMODULES = tuple(
    importlib.import_module(f"egress.{name}")
    for name in ("errors", "addresses", "hosts", "policy", "urls", "request", "connection", "fetch")
)


def test_public_names_are_reexported_from_their_modules():
    """Each public name is declared public by exactly one submodule and is that object."""
    for name in egress.__all__:
        owners = [module for module in SUBMODULES if name in module.__all__]
        assert len(owners) == 1, (name, owners)
        assert getattr(egress, name) is getattr(owners[0], name)


def test_module_has_no_django_dependency():
    """Importing the package in a fresh interpreter pulls in no Django and no project app."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import egress\n"
        "print(json.dumps({'file': egress.__file__, 'modules': sorted(sys.modules)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=30, cwd=str(ROOT)
    )
    assert result.returncode == 0, result.stderr
    assert {"core", "audit", "quotas", "plugins", "executions", "observability"} <= PROJECT_PACKAGES
    loaded = json.loads(result.stdout)
    assert Path(loaded["file"]).resolve() == ROOT / "egress" / "__init__.py"
    bad = sorted(m for m in loaded["modules"] if m.split(".")[0] in FORBIDDEN_PACKAGES)
    assert not bad, bad
    assert {module.__name__ for module in SUBMODULES} <= set(loaded["modules"])
