"""Finding 8: third-party packages installed on the host are not readable in
the sandbox.

The child's view is the standard library and the system libraries. The
site directories -- the venv's (where Django lives) and the interpreter's own,
which a Python built from source keeps inside its standard library -- are
masked, whatever `sys.path` the fork-server started with (`-I -S`: none).
A plugin that lists them, opens a file in them or imports from them gets
nothing. What a run may import besides the standard library is mounted
elsewhere, on purpose: its version's vendored wheels and the operator's
shared set (test_package_trees.py).
"""

import os
import site
import sys
import sysconfig

import django

from tests.sandbox.helpers import host_intact

LOOK_AROUND = """
import importlib
import sys
def attack(params, ctx):
    out = {}
    for directory in params["dirs"]:
        out[directory] = {"list": attempt(lambda: sorted(_os.listdir(directory))[:5])}
    for path in params["files"]:
        out[path] = {"open": attempt(lambda: open(path, "rb").read(64))}
    for directory, name in params["modules"]:
        sys.path.insert(0, directory)
        try:
            out[f"{directory}:{name}"] = {"import": attempt(lambda: importlib.import_module(name).__name__)}
        finally:
            sys.path.remove(directory)
    return out
"""


def _host_site_dirs():
    """The site directories the host's Python uses: the venv's and the base
    interpreter's (where the fork-server's interpreter comes from)."""
    base = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix})
    dirs = set(site.getsitepackages()) | {base["purelib"], base["platlib"], os.path.dirname(os.path.dirname(django.__file__))}
    return sorted(d for d in map(os.path.realpath, dirs) if os.path.isdir(d))


def _sample(directory):
    """A package in `directory` (name) and a file of it, as the host sees them."""
    for name in sorted(os.listdir(directory)):
        init = os.path.join(directory, name, "__init__.py")
        if name.isidentifier() and os.path.isfile(init):
            return name, init
    return None, None


def test_host_site_packages_are_not_readable(sandbox, run):
    dirs = _host_site_dirs()
    assert any(os.listdir(d) for d in dirs), dirs  # there is something to hide
    samples = {d: _sample(d) for d in dirs}
    params = {
        "dirs": dirs,
        "files": [init for _, init in samples.values() if init],
        "modules": [[d, name] for d, (name, _) in samples.items() if name] + [[dirs[0], "django"]],
    }
    result = run(LOOK_AROUND, params=params)
    assert result.status == "success", result
    for target, outcome in result.result.items():
        for action, report in outcome.items():
            seen_nothing = report["blocked"] or report["value"] == "[]"
            assert seen_nothing, f"{action} {target}: {report}"
    host_intact(sandbox, result)


def test_standard_library_is_still_there(sandbox, run):
    result = run("import json, sqlite3, decimal\ndef attack(params, ctx):\n    return json.dumps([str(decimal.Decimal('1.5'))])\n")
    assert result.status == "success" and result.result == '["1.5"]', result
