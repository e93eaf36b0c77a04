"""Vendored wheels: the pure-Python packages a plugin ships in `vendor/`.

A wheel is a zip an installer would unpack into site-packages. Nothing here
installs anything: no pip, no setup.py, no code of the wheel ever runs on
the host. A wheel is read in memory and accepted only if it is what it says
it is (pure Python for any platform, every file hashed in its RECORD) and
holds no native code; plugins.packages later unpacks accepted wheels, once
per version and node, into the tree the sandbox imports them from.

Why tenants may not vendor native code (the operator's shared set may): an
extension module runs beneath every check this service makes at upload,
with every system call the sandbox allows, cannot be reviewed from its
source, and is built for one machine's ABI (docs/plugins.md).
"""

import base64
import csv
import hashlib
import io
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass

from .archive import LOCK_FILE, check_relative_path, is_wheel
from .manifest import ManifestError

MAX_WHEEL_MEMBERS = 2000
# Wheel file names: distribution-version(-build)?-python-abi-platform.whl
WHEEL_NAME = re.compile(
    r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[A-Za-z0-9_.!+]+)(-(?P<build>\d[A-Za-z0-9_.]*))?"
    r"-(?P<python>[A-Za-z0-9_.]+)-(?P<abi>[A-Za-z0-9_.]+)-(?P<platform>[A-Za-z0-9_.]+)\.whl$"
)
PURE_PYTHON_TAG = re.compile(r"^py[23]\d*$")
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll", ".exe")
# ELF, PE (MZ), Mach-O (both byte orders, 32 and 64 bits, universal).
NATIVE_MAGICS = (b"\x7fELF", b"MZ", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                 b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
WHY_NO_NATIVE_CODE = (
    "uploads may vendor pure Python only: native code runs beneath every check made at upload, with every "
    "system call the sandbox allows, cannot be reviewed, and is built for one machine's ABI; ask the operator "
    "to add the package to the shared packages"
)


@dataclass(frozen=True)
class Wheel:
    path: str
    name: str  # normalized distribution name
    version: str
    sha256: str
    top_level: frozenset
    members: tuple  # (relative path, bytes) of every file to unpack


def _error(path, message):
    return ManifestError.single(path, message)


def normalized_name(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def read_vendored(files, unpacked_cap):
    """Check every vendored wheel of a plugin's files and the lock file.

    Returns the wheels (sorted by path); raises ManifestError naming the
    wheel and the file inside it at the first problem. `unpacked_cap`
    bounds the bytes of all wheels' contents together.
    """
    wheels = []
    budget = unpacked_cap
    for path in sorted(p for p in files if is_wheel(p)):
        wheel = read_wheel(path, files[path], budget)
        budget -= sum(len(content) for _, content in wheel.members)
        wheels.append(wheel)
    _check_distinct(wheels)
    if LOCK_FILE in files:
        check_lock(files[LOCK_FILE], wheels)
    return wheels


def read_wheel(path, data, unpacked_cap):
    """One wheel, checked from its name to the hash of each of its files."""
    parsed = WHEEL_NAME.match(path.rsplit("/", 1)[-1])
    if not parsed:
        raise _error(path, "is not named as a wheel is: NAME-VERSION-PYTHON-ABI-PLATFORM.whl")
    _check_pure_tag(path, f"{parsed['python']}-{parsed['abi']}-{parsed['platform']}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = _read_members(path, archive, unpacked_cap)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError) as exc:
        raise _error(path, f"is not a readable zip file: {exc}") from None
    dist_info = f"{parsed['name']}-{parsed['version']}.dist-info"
    contents = dict(members)
    _check_wheel_metadata(path, contents.get(f"{dist_info}/WHEEL"), dist_info)
    _check_record(path, contents, f"{dist_info}/RECORD")
    for name, content in members:
        _check_not_native(path, name, content)
    top_level = {
        name.split("/")[0].removesuffix(".py")
        for name, _ in members
        if not name.split("/")[0].endswith((".dist-info", ".data"))
    }
    return Wheel(
        path=path,
        name=normalized_name(parsed["name"]),
        version=parsed["version"],
        sha256=hashlib.sha256(data).hexdigest(),
        top_level=frozenset(name for name in top_level if name.isidentifier()),
        members=tuple(members),
    )


def _check_pure_tag(path, tag):
    python, abi, platform = tag.split("-")
    pythons = python.split(".")
    if not (abi == "none" and platform == "any" and all(PURE_PYTHON_TAG.match(p) for p in pythons)
            and any(p.startswith("py3") for p in pythons)):
        raise _error(path, f"is tagged {tag}; only pure-Python wheels for Python 3 on any platform "
                           "(py3-none-any, py2.py3-none-any) may be vendored")


def _read_members(path, archive, unpacked_cap):
    infos = archive.infolist()
    if len(infos) > MAX_WHEEL_MEMBERS:
        raise _error(path, f"holds {len(infos)} entries; at most {MAX_WHEEL_MEMBERS} are allowed")
    members, seen, budget = [], set(), unpacked_cap
    for info in infos:
        name = info.filename
        try:
            check_relative_path(name)
        except ManifestError as error:
            raise _error(path, error.errors[0]["message"]) from None
        if name.rstrip("/") in seen:
            raise _error(path, f"{name!r} appears more than once")
        seen.add(name.rstrip("/"))
        file_type = stat.S_IFMT(info.external_attr >> 16)
        if info.is_dir():
            continue
        if file_type not in (0, stat.S_IFREG):
            raise _error(path, f"{name!r} is not a regular file (links and devices are refused)")
        if info.flag_bits & 0x1:
            raise _error(path, f"{name!r} is encrypted")
        if name.split("/")[0].endswith(".data"):
            raise _error(path, f"{name!r} is meant to be installed outside the package (scripts, headers, data), "
                               "which a vendored wheel may not do")
        if name.endswith(".pth"):
            raise _error(path, f"{name!r} is a .pth file, which would run code or change sys.path when a site "
                               "directory is read; .pth files are refused")
        if info.file_size > budget:
            raise _error(path, f"unpacks to more than the {unpacked_cap} bytes vendored wheels may hold "
                               "in all (PLUGIN_VENDOR_MAX_UNPACKED_BYTES)")
        with archive.open(info) as stream:
            content = stream.read(budget + 1)
        if len(content) > budget:
            raise _error(path, f"unpacks to more than the {unpacked_cap} bytes vendored wheels may hold "
                               "in all (PLUGIN_VENDOR_MAX_UNPACKED_BYTES)")
        budget -= len(content)
        members.append((name, content))
    return members


def _check_wheel_metadata(path, wheel_file, dist_info):
    if wheel_file is None:
        raise _error(path, f"has no {dist_info}/WHEEL: not a wheel")
    fields = [line.partition(":") for line in wheel_file.decode("utf-8", "replace").splitlines()]
    values = [(key.strip().lower(), value.strip()) for key, _, value in fields]
    if ("root-is-purelib", "true") not in values:
        raise _error(path, f"{dist_info}/WHEEL does not say Root-Is-Purelib: true, so it is not pure Python")
    for key, value in values:
        if key == "tag":
            _check_pure_tag(path, value)


def _check_record(path, contents, record_name):
    """Every file is listed in RECORD with its sha256, and nothing listed is missing."""
    record = contents.get(record_name)
    if record is None:
        raise _error(path, f"has no {record_name}: the files cannot be checked against their hashes")
    listed = {}
    for row in csv.reader(io.StringIO(record.decode("utf-8", "replace"))):
        if row:
            listed[row[0]] = row[1] if len(row) > 1 else ""
    signatures = (record_name, record_name + ".jws", record_name + ".p7s")
    for name, content in contents.items():
        if name in signatures:
            continue
        if name not in listed:
            raise _error(path, f"{name} is not listed in its RECORD")
        algorithm, _, expected = listed[name].partition("=")
        if algorithm != "sha256":
            raise _error(path, f"{name} has no sha256 hash in its RECORD")
        actual = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        if actual != expected:
            raise _error(path, f"{name} does not match its hash in RECORD: the wheel was altered")
    missing = sorted(set(listed) - set(contents) - set(signatures))
    if missing:
        raise _error(path, f"its RECORD lists {missing[0]}, which the wheel does not hold")


def _check_not_native(path, name, content):
    lowered = name.lower()
    if lowered.endswith(NATIVE_SUFFIXES) or ".so." in lowered.rsplit("/", 1)[-1]:
        raise _error(path, f"{name} is an extension module or shared library; {WHY_NO_NATIVE_CODE}")
    if content.startswith(NATIVE_MAGICS):
        raise _error(path, f"{name} is native code (by its first bytes), whatever its name; {WHY_NO_NATIVE_CODE}")


def _check_distinct(wheels):
    """One wheel per distribution, and no file that two wheels would both
    unpack (they share one tree)."""
    seen, owners = {}, {}
    for wheel in wheels:
        if wheel.name in seen:
            raise _error(wheel.path, f"is a second wheel of {wheel.name} (with {seen[wheel.name]})")
        seen[wheel.name] = wheel.path
        for name, _ in wheel.members:
            if name in owners:
                raise _error(wheel.path, f"holds {name}, which {owners[name]} holds too")
            owners[name] = wheel.path


LOCK_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(?P<version>\S+?)\s*(?P<options>(\s--\S+)*)$")


def check_lock(text, wheels):
    """requirements.lock pins every vendored wheel with --hash=sha256:, and
    pins nothing that is not vendored: nothing is ever downloaded."""
    pins = {}
    logical = re.sub(r"\\\n", " ", text)
    for number, line in enumerate(logical.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parsed = LOCK_LINE.match(" ".join(line.split()))
        if not parsed:
            raise _error(LOCK_FILE, f"line {number}: expected NAME==VERSION --hash=sha256:HEX")
        hashes = set(re.findall(r"--hash=sha256:([0-9a-f]{64})\b", parsed["options"]))
        if not hashes:
            raise _error(LOCK_FILE, f"line {number}: {parsed['name']} has no --hash=sha256:")
        pins[normalized_name(parsed["name"])] = (parsed["version"], hashes)
    for wheel in wheels:
        if wheel.name not in pins:
            raise _error(wheel.path, f"is not pinned in {LOCK_FILE}")
        version, hashes = pins.pop(wheel.name)
        if version != wheel.version:
            raise _error(wheel.path, f"is version {wheel.version}; {LOCK_FILE} pins {version}")
        if wheel.sha256 not in hashes:
            raise _error(wheel.path, f"has sha256 {wheel.sha256}, which is not among the hashes {LOCK_FILE} pins")
    if pins:
        name = sorted(pins)[0]
        raise _error(LOCK_FILE, f"pins {name}, but vendor/ holds no wheel of it; wheels are never downloaded, "
                                "so vendor every wheel the lock file pins")
