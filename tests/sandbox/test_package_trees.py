"""The package trees in the child's view: a plugin version's vendored tree
and the operator's shared set.

The parent of the vendored trees is bound read-only (and noexec) into every
child's view, so that a version unpacked after the fork-server started is
there too; it is 0711, so a run reaches the tree it is told the name of and
cannot list the others. The shared set is bound read-only and is on every
run's sys.path. numpy from the set the suite builds (deploy/shared-packages.txt)
runs on one thread, and fails within its limits when given too little
memory. (The host side, which unpacks validated wheels into trees named by
a keyed hash, is tested in tests/plugins.)
"""

import concurrent.futures
import os
import shutil
import sys
import threading
import time

import psutil
import pytest

from sandbox import ALL_LAYERS, ForkServerClient
from tests.sandbox.helpers import CONTAINED_ERRORS, UID_BASE, host_intact, plugin, run_on

OWN_TREE = "a3f1c0de" * 4
OTHER_TREE = "0b7e55ed" * 4

LOOK_AROUND = """
import importlib
import sys
def attack(params, ctx):
    vendored, shared = params["vendored"], params["shared"]
    return {
        "own": attempt(lambda: importlib.import_module("ownlib").VALUE),
        "shared": attempt(lambda: importlib.import_module("sharedlib").VALUE),
        "path": [p for p in sys.path if p.startswith("/packages")],
        "list_parent": attempt(lambda: _os.listdir(vendored)),
        "list_own": attempt(lambda: sorted(_os.listdir(f"{vendored}/{params['own']}"))),
        "read_other_guessed": attempt(lambda: open(f"{vendored}/{params['guess']}/otherlib.py").read()),
        "import_other": attempt(lambda: importlib.import_module("otherlib").VALUE),
        "write_own": attempt(lambda: open(f"{vendored}/{params['own']}/new.py", "w")),
        "load_native_from_vendored": attempt(lambda: _ctypes.CDLL(f"{vendored}/{params['own']}/native.so")),
        "mounts": attempt(lambda: open("/proc/self/mountinfo").read()),
    }
"""


def _a_shared_library():
    """A real ELF shared object (an extension module of the standard library)."""
    dynload = os.path.join(os.path.dirname(os.__file__), "lib-dynload")
    return os.path.join(dynload, sorted(name for name in os.listdir(dynload) if name.endswith(".so"))[0])


@pytest.fixture(scope="module")
def package_client(sandbox, tmp_path_factory):
    root = tmp_path_factory.mktemp("package-trees")
    vendored = root / "vendored"
    for tree, module in ((OWN_TREE, "ownlib"), (OTHER_TREE, "otherlib")):
        (vendored / tree).mkdir(parents=True)
        (vendored / tree / f"{module}.py").write_text(f"VALUE = {module!r}\n")
    shutil.copy(_a_shared_library(), vendored / OWN_TREE / "native.so")
    shared = root / "shared"
    shared.mkdir()
    (shared / "sharedlib.py").write_text("VALUE = 'shared'\n")
    client = ForkServerClient(lock_dir=sandbox.lock_dir, uid_base=UID_BASE, required_layers=list(ALL_LAYERS),
                              vendored_packages_dir=str(vendored), shared_packages_dir=str(shared))
    client.ensure_started()
    yield client, vendored
    client.close()


def _look_around(client, tree):
    params = {"vendored": "/packages/vendored", "shared": "/packages/shared", "own": tree, "guess": OTHER_TREE[:-1] + "0"}
    return run_on(client, plugin(LOOK_AROUND), params, package_tree=tree)


def test_a_run_imports_its_own_tree_and_the_shared_set(sandbox, package_client):
    client, vendored = package_client
    assert oct(os.stat(vendored).st_mode & 0o777) == "0o711"
    result = _look_around(client, OWN_TREE)
    assert result.status == "success", result
    report = result.result
    assert report["own"] == {"blocked": False, "value": "'ownlib'"}
    assert report["shared"] == {"blocked": False, "value": "'shared'"}
    assert report["path"] == [f"/packages/vendored/{OWN_TREE}", "/packages/shared"]
    assert report["list_own"] == {"blocked": False, "value": repr(["native.so", "ownlib.py"])}
    host_intact(sandbox, result)


def test_a_run_cannot_list_the_parent_nor_reach_another_tree(sandbox, package_client):
    client, _ = package_client
    report = _look_around(client, OWN_TREE).result
    assert report["list_parent"]["blocked"] and "Permission denied" in report["list_parent"]["error"], report
    assert report["read_other_guessed"]["blocked"], report
    assert report["import_other"]["blocked"] and "otherlib" in report["import_other"]["error"], report
    # Bind mounts show as mounts, never the trees under them.
    assert OTHER_TREE not in str(report["mounts"])


def test_the_trees_are_read_only_and_no_native_code_loads_from_them(sandbox, package_client):
    client, vendored = package_client
    result = _look_around(client, OWN_TREE)
    report = result.result
    assert report["write_own"]["blocked"], report
    assert not (vendored / OWN_TREE / "new.py").exists()
    # Wheels with native code are refused at upload; noexec is the floor under that.
    assert report["load_native_from_vendored"]["blocked"], report
    assert "failed to map segment" in report["load_native_from_vendored"]["error"], report
    host_intact(sandbox, result)


def test_a_tree_unpacked_after_start_is_there_and_a_run_without_one_has_none(sandbox, package_client):
    client, vendored = package_client
    late = "1a7e" * 8
    (vendored / late).mkdir()
    (vendored / late / "ownlib.py").write_text("VALUE = 'late'\n")
    report = _look_around(client, late).result
    assert report["own"] == {"blocked": False, "value": "'late'"}
    bare = _look_around(client, "")
    assert bare.result["path"] == ["/packages/shared"]
    assert bare.result["own"]["blocked"]


def test_a_module_missing_at_run_time_says_where_it_was_looked_for(sandbox, run):
    result = run("import not_a_module_anywhere\ndef attack(params, ctx):\n    return {}\n")
    assert result.error_type == "PLUGIN_ERROR"
    assert "No module named 'not_a_module_anywhere'" in result.message
    assert "SANDBOX_SHARED_PACKAGES" in result.message


# -- the operator's numpy, for real -------------------------------------------

NUMPY = """
import time
started = time.perf_counter()
import numpy
imported = time.perf_counter()
def attack(params, ctx):
    a = numpy.random.default_rng(1).random((300, 300))
    product = a @ a.T  # OpenBLAS starts its threads, if it would, on first use
    time.sleep(params.get("linger", 0))
    return {"import_ms": (imported - started) * 1000, "symmetric": bool(numpy.allclose(product, product.T))}
"""


@pytest.fixture(scope="module")
def numpy_client(sandbox, shared_packages):
    """A client given the shared set the suite builds (tests/conftest.py)."""
    venv_site = os.path.join(shared_packages, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    client = ForkServerClient(lock_dir=sandbox.lock_dir, uid_base=UID_BASE, required_layers=list(ALL_LAYERS),
                              shared_packages_dir=venv_site if os.path.isdir(venv_site) else shared_packages)
    client.ensure_started()
    yield client
    client.close()


def _most_threads_of_runs(client, stop):
    """The most threads any process under the fork-server had while `stop` was unset."""
    most = 0
    while not stop.is_set():
        for child in psutil.Process(client.process.pid).children(recursive=True):
            try:
                most = max(most, child.num_threads())
            except psutil.Error:
                continue
        time.sleep(0.02)
    return most


def test_numpy_from_the_shared_set_runs_on_one_thread(sandbox, numpy_client):
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        watching = pool.submit(_most_threads_of_runs, numpy_client, stop)
        result = run_on(numpy_client, NUMPY, {"linger": 0.5}, timeout_ms=5000, memory_mb=256)
        stop.set()
        most_threads = watching.result()
    assert result.status == "success", result
    assert result.result["symmetric"] is True
    # OpenBLAS would start one thread per CPU; the child's environment holds it to one.
    assert most_threads == 1
    host_intact(sandbox, result)


def test_numpy_under_too_little_memory_fails_within_its_limits(sandbox, numpy_client):
    result = run_on(numpy_client, NUMPY, {}, timeout_ms=1000, memory_mb=48)
    assert result.status != "success" and result.error_type in CONTAINED_ERRORS, result
    assert result.elapsed < 5
    host_intact(sandbox, result)
