"""The stored form of a plugin version: a zip of small UTF-8 text files, and
the pure-Python wheels it vendors (`vendor/*.whl`, checked by plugins.wheels).

Uploads are untrusted, so an archive is only ever read in memory, never
extracted, and anything that could escape a directory, exhaust memory or
smuggle in binaries is refused before a byte of it is decoded. A set of
files maps each relative path to its text (str), or for a wheel to its
bytes.
"""

import hashlib
import io
import json
import os
import re
import stat
import zipfile
import zlib
from pathlib import Path

from django.conf import settings

from .manifest import MANIFEST_NAME, ManifestError

MAX_FILES = 200
MAX_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 5 * 1024 * 1024
# All the wheels of a version, as uploaded (each is also capped by
# PLUGIN_WHEEL_MAX_BYTES, and their contents by PLUGIN_VENDOR_MAX_UNPACKED_BYTES).
MAX_VENDORED_BYTES = 8 * 1024 * 1024
# Room for the headers of MAX_FILES entries around the text and the wheels.
MAX_ARCHIVE_BYTES = MAX_TOTAL_BYTES + MAX_VENDORED_BYTES + 1024 * 1024
# Source code deflates to a third or a tenth of its size; a zip bomb by a
# factor of hundreds or more. Small files are exempt: a few hundred repeated
# bytes can legitimately compress very well and can do no harm.
MAX_COMPRESSION_RATIO = 100
RATIO_CHECKED_FROM_BYTES = 64 * 1024
TEXT_SUFFIXES = (".py", ".js", ".cjs", ".json", ".txt", ".md")
# Native Node addons: compiled code, which no plugin may bring.
NATIVE_ADDON_SUFFIX = ".node"
LOCK_FILE = "requirements.lock"
VENDOR_DIR = "vendor/"
# Zip entries must carry a date; a fixed one makes equal files give equal bytes.
FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
SKIPPED_IN_FOLDERS = re.compile(r"^(\..*|__pycache__)$")


def _archive_error(message):
    return ManifestError.single("archive", message)


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def is_wheel(path):
    """Whether the path is where a vendored wheel goes: directly in vendor/."""
    return path.startswith(VENDOR_DIR) and path.endswith(".whl") and "/" not in path[len(VENDOR_DIR):]


def wheel_cap():
    return min(settings.PLUGIN_WHEEL_MAX_BYTES, MAX_VENDORED_BYTES)


def check_files(files):
    """Enforce the archive rules on a {relative path: text or wheel bytes}
    mapping, whatever its source."""
    if len(files) > MAX_FILES:
        raise _archive_error(f"{len(files)} files; at most {MAX_FILES} are allowed")
    total = vendored = 0
    for path, text in files.items():
        _check_file_name(path)
        if is_wheel(path):
            if not isinstance(text, bytes):
                raise _archive_error(f"{path}: a wheel is bytes")
            if len(text) > wheel_cap():
                raise _archive_error(f"{path}: {len(text)} bytes; a wheel may have at most {wheel_cap()}")
            vendored += len(text)
            continue
        if not isinstance(text, str):
            raise _archive_error(f"{path}: contents must be text")
        if "\x00" in text:
            raise _archive_error(f"{path}: contains NUL characters, so it is not a text file")
        size = len(text.encode())
        if size > MAX_FILE_BYTES:
            raise _archive_error(f"{path}: {size} bytes; a file may have at most {MAX_FILE_BYTES}")
        total += size
    if total > MAX_TOTAL_BYTES:
        raise _archive_error(f"{total} bytes in all; a plugin may have at most {MAX_TOTAL_BYTES}")
    if vendored > MAX_VENDORED_BYTES:
        raise _archive_error(f"{vendored} bytes of wheels in all; a plugin may vendor at most {MAX_VENDORED_BYTES}")
    if MANIFEST_NAME not in files:
        nested = sorted(path for path in files if path.endswith("/" + MANIFEST_NAME))
        hint = f" (found {nested[0]}: archive the folder's contents, not the folder)" if nested else ""
        raise _archive_error(f"{MANIFEST_NAME} is missing at the top of the archive{hint}")


def check_relative_path(path):
    # A newline in a name could forge lines of a listing of the files (the
    # signed files digest was one); other control, format and separator
    # characters hide what a name says from whoever reads it.
    unprintable = next((char for char in path if not char.isprintable()), None)
    if unprintable is not None:
        raise _archive_error(f"{path!r}: names may only hold printable characters, not {unprintable!r}")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise _archive_error(f"{path!r}: absolute paths are not allowed")
    if "\\" in path:
        raise _archive_error(f"{path!r}: use '/' as the only separator")
    if any(part in ("", ".", "..") for part in path.rstrip("/").split("/")):
        raise _archive_error(f"{path!r}: path segments may not be empty, '.' or '..'")


def _check_file_name(path):
    check_relative_path(path)
    if path.lower().endswith(NATIVE_ADDON_SUFFIX):
        raise _archive_error(f"{path!r}: native Node addons (.node) are not allowed; plugins are pure JavaScript")
    if not (path.lower().endswith(TEXT_SUFFIXES) or path == LOCK_FILE or is_wheel(path)):
        raise _archive_error(
            f"{path!r}: only {', '.join(TEXT_SUFFIXES)} files, a top-level {LOCK_FILE} "
            f"and wheels in {VENDOR_DIR} (vendor/NAME.whl) are allowed"
        )


def _decode(path, data):
    try:
        # A byte-order mark is harmless but would break json.loads and compile.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _archive_error(f"{path}: not UTF-8 text") from None


def files_from_zip(data):
    """Read an uploaded or stored archive into {relative path: text}, refusing anything unsafe."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise _archive_error(f"the archive is {len(data)} bytes; at most {MAX_ARCHIVE_BYTES} are allowed")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            files = {}
            budget = MAX_TOTAL_BYTES
            for info in _checked_members(archive.infolist()):
                if is_wheel(info.filename):
                    files[info.filename] = _read_at_most(archive, info, wheel_cap())
                    continue
                content = _read_at_most(archive, info, min(MAX_FILE_BYTES, budget))
                budget -= len(content)
                files[info.filename] = _decode(info.filename, content)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError) as exc:
        raise _archive_error(f"not a readable zip file: {exc}") from None
    check_files(files)
    return files


def _checked_members(infos):
    """The file entries of a zip, once its declared names, types and sizes are safe to read."""
    members = [info for info in infos if not info.is_dir()]
    if len(members) > MAX_FILES:
        raise _archive_error(f"{len(members)} files; at most {MAX_FILES} are allowed")
    seen = set()
    declared_total = declared_vendored = 0
    for info in infos:
        name = info.filename
        if name in seen:
            raise _archive_error(f"{name!r} appears more than once")
        seen.add(name)
        check_relative_path(name)
        file_type = stat.S_IFMT(info.external_attr >> 16)
        if file_type == stat.S_IFLNK:
            raise _archive_error(f"{name!r} is a symbolic link; links are not allowed")
        if info.is_dir():
            continue
        if file_type not in (0, stat.S_IFREG):
            raise _archive_error(f"{name!r} is not a regular file")
        _check_file_name(name)
        if info.flag_bits & 0x1:
            raise _archive_error(f"{name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _archive_error(f"{name!r}: only stored or deflated entries are supported")
        if is_wheel(name):
            if info.file_size > wheel_cap():
                raise _archive_error(f"{name}: {info.file_size} bytes; a wheel may have at most {wheel_cap()}")
            declared_vendored += info.file_size
            continue
        if info.file_size > MAX_FILE_BYTES:
            raise _archive_error(f"{name}: {info.file_size} bytes; a file may have at most {MAX_FILE_BYTES}")
        if info.file_size >= RATIO_CHECKED_FROM_BYTES and info.file_size > MAX_COMPRESSION_RATIO * info.compress_size:
            ratio = info.file_size // max(info.compress_size, 1)
            raise _archive_error(f"{name}: compressed {ratio}:1, a likely zip bomb")
        declared_total += info.file_size
    if declared_total > MAX_TOTAL_BYTES:
        raise _archive_error(f"{declared_total} bytes in all; a plugin may have at most {MAX_TOTAL_BYTES}")
    if declared_vendored > MAX_VENDORED_BYTES:
        raise _archive_error(
            f"{declared_vendored} bytes of wheels in all; a plugin may vendor at most {MAX_VENDORED_BYTES}"
        )
    return members


def _read_at_most(archive, info, limit):
    # The declared sizes were checked, but they are the uploader's word: the
    # read itself is capped too.
    with archive.open(info) as stream:
        content = stream.read(limit + 1)
    if len(content) > limit:
        raise _archive_error(f"{info.filename}: holds more than its declared size or the size limits allow")
    return content


def build_archive(files):
    """A deterministic zip of the files: sorted names, fixed timestamps and modes.

    Entries are stored rather than deflated, so the bytes (and the sha256)
    depend only on the files, never on the zlib version, and reading them
    back costs nothing.
    """
    check_files(files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, date_time=FIXED_TIMESTAMP)
            info.create_system = 3  # Unix, so that the mode below means the same everywhere
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            content = files[path]
            archive.writestr(info, content if isinstance(content, bytes) else content.encode())
    return buffer.getvalue()


def read_manifest(files):
    """The parsed plugin.json of a set of files (the schema is checked by plugins.manifest)."""
    try:
        return json.loads(files[MANIFEST_NAME])
    except json.JSONDecodeError as exc:
        raise ManifestError.single(MANIFEST_NAME, f"not valid JSON: {exc}") from None


def files_from_module(source, manifest_text, filename="plugin.py"):
    """The files of a one-module plugin: the module goes in as the manifest's entrypoint."""
    files = {MANIFEST_NAME: manifest_text}
    manifest = read_manifest(files)
    entrypoint = manifest.get("entrypoint") if isinstance(manifest, dict) else None
    if not (isinstance(entrypoint, str) and entrypoint.endswith((".py", ".js"))):
        javascript = isinstance(manifest, dict) and manifest.get("runtime") == "node"
        entrypoint = "plugin.js" if javascript else filename
    files[entrypoint] = source
    check_files(files)
    return files


def load_plugin_source(path, manifest_path=None):
    """Read a plugin from a zip, a folder, or a .py file with its plugin.json.

    The manifest of a .py file is `manifest_path`, or else the plugin.json
    beside it. Returns (manifest, files); the archive rules are enforced, the
    manifest itself is validated when the version is installed.
    """
    path = Path(path)
    if manifest_path and path.suffix != ".py":
        raise _archive_error("a separate manifest only goes with a single .py file")
    if path.is_dir():
        files = _files_from_folder(path)
    elif path.suffix == ".py":
        manifest_path = Path(manifest_path) if manifest_path else path.with_name(MANIFEST_NAME)
        files = files_from_module(
            _decode(path.name, _read_file(path, MAX_FILE_BYTES)),
            _decode(MANIFEST_NAME, _read_file(manifest_path, MAX_FILE_BYTES)),
            filename=path.name,
        )
    else:
        files = files_from_zip(_read_file(path, MAX_ARCHIVE_BYTES))
    return read_manifest(files), files


def load_uploaded_plugin(*, archive=None, source=None, manifest=None):
    """Read an upload: a zip in `archive`, or one module in `source` with its
    plugin.json in `manifest`.

    Each part is bytes or a binary file object (an uploaded file), read no
    further than its size cap. Returns (manifest, files) as load_plugin_source.
    """
    if archive is not None and (source is not None or manifest is not None):
        raise _archive_error("send either a zip in `archive` or a .py in `source` with its `manifest`, not both")
    if archive is not None:
        files = files_from_zip(_read_upload(archive, "archive", MAX_ARCHIVE_BYTES))
    elif source is not None:
        if manifest is None:
            raise ManifestError.single("manifest", "is required with `source`: the module's plugin.json")
        files = files_from_module(
            _decode("source", _read_upload(source, "source", MAX_FILE_BYTES)),
            _decode(MANIFEST_NAME, _read_upload(manifest, "manifest", MAX_FILE_BYTES)),
        )
    else:
        raise _archive_error("nothing uploaded: send a zip in `archive`, or a .py in `source` with its `manifest`")
    return read_manifest(files), files


def _read_upload(upload, field, limit):
    content = upload if isinstance(upload, bytes) else upload.read(limit + 1)
    if len(content) > limit:
        raise ManifestError.single(field, f"is larger than {limit} bytes")
    return content


def _read_file(path, limit):
    try:
        with open(path, "rb") as handle:
            content = handle.read(limit + 1)
    except OSError as exc:
        raise _archive_error(f"cannot read {path}: {exc.strerror}") from None
    if len(content) > limit:
        raise _archive_error(f"{path} is larger than {limit} bytes")
    return content


def _files_from_folder(folder):
    """The plugin files under a folder, leaving out dotfiles and __pycache__."""
    files = {}
    for root, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(name for name in dirnames if not SKIPPED_IN_FOLDERS.match(name))
        for name in dirnames + sorted(filenames):
            if SKIPPED_IN_FOLDERS.match(name):
                continue
            full_path = Path(root, name)
            relative = full_path.relative_to(folder).as_posix()
            # os.walk lists a link to a directory among dirnames without entering it.
            if full_path.is_symlink():
                raise _archive_error(f"{relative!r} is a symbolic link; links are not allowed")
            if full_path.is_dir():
                continue
            if len(files) == MAX_FILES:
                raise _archive_error(f"more than {MAX_FILES} files; at most {MAX_FILES} are allowed")
            _check_file_name(relative)
            if is_wheel(relative):
                files[relative] = _read_file(full_path, wheel_cap())
            else:
                files[relative] = _decode(relative, _read_file(full_path, MAX_FILE_BYTES))
    check_files(files)
    return files
