"""Where a plugin version's dependencies come from on this node: its vendored
wheels, unpacked into a tree of their own, and the operator's shared set.

Nodes share the database, not their disks, so each node unpacks a version's
wheels from the archive the database holds, the first time it runs that
version: into a temporary directory beside the others, then renamed into
place, so that a tree is either whole or absent and two workers unpacking
at once leave one. Trees live under PLUGIN_PACKAGES_DIR, a directory only
its owner can list (0711): the sandbox binds it into every run's view, and
a run reaches its own tree by a name derived from SECRET_KEY and the
version's archive, which no other run can compute or list.
"""

import compileall
import functools
import hashlib
import hmac
import os
import shutil
import sys
import tempfile
from pathlib import Path

from django.conf import settings

from sandbox import make_private_parent

from .archive import files_from_zip, is_wheel
from .manifest import Importable
from .models import PluginVersion
from .wheels import read_vendored


def importable_names(files):
    """What the plugin's imports may name besides the standard library and its
    own modules: checks its wheels (ManifestError if one is refused)."""
    wheels = read_vendored(files, settings.PLUGIN_VENDOR_MAX_UNPACKED_BYTES)
    vendored = frozenset().union(*(wheel.top_level for wheel in wheels))
    site = shared_site_packages()
    return Importable(vendored=vendored, shared=_top_level_modules(site) if site else None)


def shared_site_packages():
    """The site-packages directory of SANDBOX_SHARED_PACKAGES (a virtualenv,
    or such a directory itself), or None when unset or missing."""
    configured = settings.SANDBOX_SHARED_PACKAGES
    if not configured:
        return None
    root = Path(configured).resolve()
    site = root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    if site.is_dir():
        return str(site)
    return str(root) if root.is_dir() else None


@functools.lru_cache(maxsize=8)
def _top_level_modules(site):
    """Modules (`name.py`, extension modules) and packages (folders holding
    Python somewhere: namespace packages have no __init__.py) at the top of
    a site directory; not the scripts or bundled libraries beside them."""
    names = set()
    for entry in os.scandir(site):
        name = entry.name.split(".")[0]
        if not name.isidentifier() or entry.name.endswith((".dist-info", ".egg-info")):
            continue
        if entry.is_dir() and _holds_python(entry.path) or entry.name.endswith((".py", ".so")):
            names.add(name)
    return frozenset(names)


def _holds_python(folder):
    return any(name.endswith(".py") for _, _, names in os.walk(folder) for name in names)


def tree_name(sha256):
    """The name of a version's tree: unguessable without SECRET_KEY, the same
    on every node."""
    key = hmac.new(settings.SECRET_KEY.encode(), b"plugin-packages", hashlib.sha256).digest()
    return hmac.new(key, sha256.encode(), hashlib.sha256).hexdigest()[:32]


def package_tree(version):
    """The name of the version's unpacked tree under PLUGIN_PACKAGES_DIR,
    unpacking it first if this node has not; "" if it vendors nothing."""
    if not _vendors_wheels(version.sha256):
        return ""
    name = tree_name(version.sha256)
    if not os.path.isdir(os.path.join(settings.PLUGIN_PACKAGES_DIR, name)):
        _unpack(version.sha256, name)
    return name


@functools.lru_cache(maxsize=1024)
def _vendors_wheels(sha256):
    return any(is_wheel(path) for path in _stored_files(sha256))


def _stored_files(sha256):
    archive = PluginVersion.objects.filter(sha256=sha256).values_list("archive", flat=True).first()
    return files_from_zip(bytes(archive)) if archive is not None else {}


def _unpack(sha256, name):
    # Checked again: what is unpacked is what the checks saw, whatever
    # happened to the row since.
    wheels = read_vendored(_stored_files(sha256), settings.PLUGIN_VENDOR_MAX_UNPACKED_BYTES)
    parent = settings.PLUGIN_PACKAGES_DIR
    make_private_parent(parent)
    staging = tempfile.mkdtemp(prefix=".unpacking-", dir=parent)
    try:
        for wheel in wheels:
            for member, content in wheel.members:
                target = os.path.join(staging, member)
                os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                with open(target, "xb") as handle:
                    handle.write(content)
        # Runs cannot write bytecode; compiling executes nothing.
        compileall.compile_dir(staging, quiet=2, workers=1)
        # Whatever this process's umask: the runs' uids must read the tree.
        for directory, _, file_names in os.walk(staging):
            os.chmod(directory, 0o755)
            for file_name in file_names:
                os.chmod(os.path.join(directory, file_name), 0o644)
        os.rename(staging, os.path.join(parent, name))
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        # Another worker renamed its copy first: that one is as good.
        if not os.path.isdir(os.path.join(parent, name)):
            raise
