"""Plugin dependencies: vendored wheels refused at upload for every kind of
problem (native code, altered files, .pth, paths, tags, sizes, the lock
file, imports nothing provides), each naming the wheel and the file; the
signed digest covering wheels; an accepted version unpacked once per node
into its own tree; and the two
examples that depend on packages -- table-report (a vendored wheel) and
matrix-tools (numpy from the operator's shared set) -- uploaded through the
API and run through the real cluster and sandbox."""

import base64
import hashlib
import io
import json
import os
import stat
import zipfile

import pytest

from plugins.archive import load_plugin_source
from plugins.models import PluginVersion
from plugins.packages import _unpack, package_tree, tree_name
from plugins.signing import files_digest
from tests.factories import EXAMPLES, install_folder
from tests.plugins.helpers import (
    assert_nothing_stored,
    assert_validation_error,
    example_zip,
    manifest,
    upload,
    zip_of,
)

USES_TINYLIB = "import tinylib\n\ndef echo(params, ctx):\n    return {'value': tinylib.VALUE}\n"


def _record_hash(content):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()


def wheel(name="tinylib", version="1.0", files=None, tag="py3-none-any", purelib="true", unrecorded=(),
          altered=()):
    """(file name, bytes) of a wheel as a build tool makes it: WHEEL, METADATA
    and a RECORD hashing every file; then `unrecorded` (path, bytes) entries
    left out of the RECORD and `altered` paths whose content changes after
    hashing."""
    members = dict(files or {f"{name}/__init__.py": b"VALUE = 42\n"})
    dist_info = f"{name}-{version}.dist-info"
    members[f"{dist_info}/WHEEL"] = f"Wheel-Version: 1.0\nRoot-Is-Purelib: {purelib}\nTag: {tag}\n".encode()
    members[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    record = "".join(f"{path},{_record_hash(content)},{len(content)}\n" for path, content in members.items())
    members[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    for path in altered:
        members[path] += b"# changed after the wheel was built\n"
    members.update(unrecorded)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in members.items():
            archive.writestr(path, content)
    return f"{name}-{version}-{tag}.whl", buffer.getvalue()


def plugin_with(*wheels, source=USES_TINYLIB, lock=None):
    entries = [("plugin.json", json.dumps(manifest())), ("plugin.py", source)]
    entries += [(f"vendor/{file_name}", content) for file_name, content in wheels]
    if lock is not None:
        entries.append(("requirements.lock", lock))
    return zip_of(*entries)


def a_shared_library():
    dynload = os.path.join(os.path.dirname(os.__file__), "lib-dynload")
    name = sorted(n for n in os.listdir(dynload) if n.endswith(".so"))[0]
    with open(os.path.join(dynload, name), "rb") as handle:
        return handle.read()


WHEEL_NAME = "vendor/tinylib-1.0-py3-none-any.whl"
REFUSED_WHEELS = {
    "extension module": (
        dict(files={"tinylib/__init__.py": b"from ._speed import VALUE\n",
                    "tinylib/_speed.cpython-311-x86_64-linux-gnu.so": a_shared_library()}),
        ["tinylib/_speed.cpython-311-x86_64-linux-gnu.so is an extension module", "pure Python only",
         "every system call the sandbox allows", "shared packages"],
    ),
    "native code under another name": (
        dict(files={"tinylib/__init__.py": b"VALUE = 1\n", "tinylib/table.dat": a_shared_library()}),
        ["tinylib/table.dat is native code (by its first bytes)"],
    ),
    "altered file": (dict(altered=["tinylib/__init__.py"]), ["tinylib/__init__.py does not match its hash in RECORD"]),
    "file missing from RECORD": (
        dict(unrecorded=[("tinylib/extra.py", b"x = 1\n")]), ["tinylib/extra.py is not listed in its RECORD"]
    ),
    ".pth file": (
        dict(files={"tinylib/__init__.py": b"VALUE = 1\n", "tinylib-init.pth": b"import os; os.system('id')\n"}),
        ["'tinylib-init.pth' is a .pth file", "refused"],
    ),
    "path traversal": (
        dict(files={"tinylib/__init__.py": b"VALUE = 1\n", "../../evil.py": b"x = 1\n"}), ["'..'"]
    ),
    "scripts outside the package": (
        dict(files={"tinylib/__init__.py": b"VALUE = 1\n", "tinylib-1.0.data/scripts/run": b"#!/bin/sh\n"}),
        ["installed outside the package"],
    ),
    "not pure Python by its WHEEL": (dict(purelib="false"), ["Root-Is-Purelib: true"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED_WHEELS))
def test_a_refused_wheel_is_named_with_its_file_and_nothing_is_stored(api, case):
    options, words = REFUSED_WHEELS[case]
    assert_validation_error(upload(api, plugin_with(wheel(**options))), WHEEL_NAME, *words)
    assert_nothing_stored()


def test_a_platform_wheel_is_refused_by_its_tags(api):
    file_name, content = wheel(tag="cp311-cp311-manylinux_2_17_x86_64")
    response = upload(api, plugin_with((file_name, content)))
    assert_validation_error(response, f"vendor/{file_name}", "cp311-cp311-manylinux_2_17_x86_64",
                            "only pure-Python wheels")


def test_wheels_are_capped_one_by_one_and_once_unpacked(api, settings):
    big = {"tinylib/__init__.py": b"VALUE = 1\n", "tinylib/data.py": b"# " + b"x" * 300_000 + b"\n"}
    settings.PLUGIN_VENDOR_MAX_UNPACKED_BYTES = 200_000
    assert_validation_error(upload(api, plugin_with(wheel(files=big))), WHEEL_NAME, "PLUGIN_VENDOR_MAX_UNPACKED_BYTES")
    settings.PLUGIN_WHEEL_MAX_BYTES = 500
    assert_validation_error(upload(api, plugin_with(wheel())), "archive", "a wheel may have at most 500")
    assert_nothing_stored()


def test_wheels_go_in_vendor_only(api):
    entries = [("plugin.json", json.dumps(manifest())), ("plugin.py", USES_TINYLIB), ("lib/tinylib.whl", b"PK")]
    assert_validation_error(upload(api, zip_of(*entries)), "archive", "wheels in vendor/")


def test_imports_nothing_provides_are_refused_by_name(api):
    source = "import tinylib\nimport requests\nfrom yaml import safe_load\n\ndef echo(params, ctx):\n    return {}\n"
    error = assert_validation_error(upload(api, plugin_with(wheel(), source=source)), "plugin.py", "'yaml'")
    messages = [detail["message"] for detail in error["details"] if detail["field"] == "plugin.py"]
    assert [message.split(",")[0] for message in messages] == ["line 2: imports 'requests'", "line 3: imports 'yaml'"]
    assert all("vendored wheels" in message and "shared packages" in message for message in messages)
    assert_nothing_stored()


def test_the_lock_file_pins_every_wheel_by_hash(api):
    file_name, content = wheel()
    digest = hashlib.sha256(content).hexdigest()
    cases = [
        (f"tinylib==1.0 --hash=sha256:{'0' * 64}\n", WHEEL_NAME, "not among the hashes"),
        (f"tinylib==1.1 --hash=sha256:{digest}\n", WHEEL_NAME, "requirements.lock pins 1.1"),
        ("other==2.0 --hash=sha256:" + "1" * 64 + "\n", WHEEL_NAME, "is not pinned"),
        (f"tinylib==1.0 --hash=sha256:{digest}\nother==2.0 \\\n  --hash=sha256:{'1' * 64}\n", "requirements.lock",
         "never downloaded"),
        ("tinylib==1.0\n", "requirements.lock", "has no --hash=sha256:"),
    ]
    for lock, field, words in cases:
        assert_validation_error(upload(api, plugin_with((file_name, content), lock=lock)), field, words)
    assert_nothing_stored()
    response = upload(api, plugin_with((file_name, content), lock=f"# pinned\ntinylib==1.0 --hash=sha256:{digest}\n"))
    assert response.status_code == 201, response.json()


def test_a_version_is_unpacked_once_per_node_into_a_private_tree(db, settings, tmp_path):
    settings.PLUGIN_PACKAGES_DIR = str(tmp_path / "plugin-packages")
    version = install_folder(EXAMPLES / "table-report")
    umask = os.umask(0o077)  # a strict worker's: the runs' uids must read the tree all the same
    try:
        name = package_tree(version)
    finally:
        os.umask(umask)
    tree = tmp_path / "plugin-packages" / name
    assert name == tree_name(version.sha256) and len(name) == 32
    assert stat.S_IMODE(os.stat(tree.parent).st_mode) == 0o711
    assert stat.S_IMODE(os.stat(tree).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tree / "tabulate" / "__init__.py").st_mode) == 0o644
    compiled = list((tree / "tabulate" / "__pycache__").glob("__init__.*.pyc"))
    assert compiled, "compiled once, as runs cannot"
    assert stat.S_IMODE(os.stat(compiled[0]).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(compiled[0].parent).st_mode) == 0o755
    # Another node (or this one, its disk wiped) unpacks again from the database.
    before = (tree / "tabulate" / "__init__.py").read_bytes()
    os.rename(tree, tmp_path / "gone")
    assert package_tree(version) == name and (tree / "tabulate" / "__init__.py").read_bytes() == before
    # A worker that loses the race to rename keeps the winner's tree and no leftovers.
    _unpack(version.sha256, name)
    assert sorted(os.listdir(tree.parent)) == [name]
    # The name is keyed: without the service's key it cannot be computed.
    settings.SECRET_KEY = "another key"
    assert tree_name(version.sha256) != name


def test_a_version_without_wheels_has_no_tree(db, settings, tmp_path):
    settings.PLUGIN_PACKAGES_DIR = str(tmp_path / "plugin-packages")
    assert package_tree(install_folder(EXAMPLES / "stats")) == ""
    assert not (tmp_path / "plugin-packages").exists()


@pytest.mark.slow
def test_the_dependency_examples_upload_and_run_in_the_sandbox(live, api, org):
    for name in ("table-report", "matrix-tools"):
        response = upload(api, example_zip(name))
        assert response.status_code == 201, response.json()
    table = api.post("/execute", {"pluginId": "table-report", "actionName": "render", "params": {
        "rows": [["apples", 3, 0.5], ["pears", 12, 0.25]], "headers": ["fruit", "count", "price"],
        "format": "github"}}, format="json")
    assert table.status_code == 200, table.json()
    assert table.json()["result"]["table"].splitlines() == [
        "| fruit   |   count |   price |",
        "|---------|---------|---------|",
        "| apples  |       3 |    0.5  |",
        "| pears   |      12 |    0.25 |",
    ]
    assert table.json()["result"]["tabulateVersion"] == "0.9.0"
    solved = api.post("/execute", {"pluginId": "matrix-tools", "actionName": "solve",
                                   "params": {"a": [[2, 1], [1, 3]], "b": [3, 5]}}, format="json")
    assert solved.status_code == 200, solved.json()
    assert solved.json()["result"]["x"] == pytest.approx([0.8, 1.4])
    assert solved.json()["result"]["determinant"] == pytest.approx(5.0)
    singular = api.post("/execute", {"pluginId": "matrix-tools", "actionName": "solve",
                                     "params": {"a": [[1, 2], [2, 4]], "b": [1, 2]}}, format="json")
    assert singular.status_code == 400 and "singular" in singular.json()["error"]["message"]
    assert PluginVersion.objects.filter(plugin__slug="table-report").count() == 1


def test_the_signed_digest_covers_the_wheels_as_they_are():
    _, files = load_plugin_source(EXAMPLES / "table-report")
    wheel_path = "vendor/tabulate-0.9.0-py3-none-any.whl"
    listing = "".join(
        f"{hashlib.sha256((EXAMPLES / 'table-report' / path).read_bytes()).hexdigest()} {len(path)} {path}\n"
        for path in sorted(files)
    )
    assert files_digest(files) == hashlib.sha256(listing.encode()).hexdigest()
    assert files_digest({**files, wheel_path: files[wheel_path] + b"\0"}) != files_digest(files)
