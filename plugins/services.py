"""Installing, activating and reading plugin versions.

Every change to which version of a plugin runs goes through here, so the
one-active-version rule and the audit trail hold whichever door (API, admin,
management command) it came through.
"""

import functools
import json
import marshal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.events import record_event
from audit.models import AuditEvent

from . import javascript
from .archive import build_archive, files_from_zip, sha256_hex
from .manifest import MANIFEST_NAME, ManifestError, runtime_of, validate_plugin
from .models import Plugin, PluginVersion
from .packages import importable_names
from .signing import files_digest, verify_signature

# Decoded archives kept per process; a worker serving many plugins holds at
# most this many (each at most a few MiB).
FILES_CACHE_SIZE = 256


def install_version(manifest, files, *, owner=None, activate=True, actor_id="", signature=None):
    """Validate and store a new version of the plugin named by the manifest.

    `owner` is the organization uploading it (None for an operator installing
    a public plugin); only the plugin's owner may add versions. `signature`
    is the publisher's base64 Ed25519 signature of the files' digest (see
    plugins.signing). Raises ManifestError for an invalid plugin, a missing
    or untrusted signature, a plugin owned by someone else, or a version
    that already exists.
    """
    manifest = validate_plugin(manifest, files, importable_names(files), max_scratch_mb=settings.SANDBOX_MAX_SCRATCH_MB)
    # Digested as uploaded, before plugin.json is rewritten below: that is
    # what the publisher has, and so what they sign.
    digest = files_digest(files)
    signed_by = verify_signature(digest, signature)
    # The archive's plugin.json is the manifest as stored, defaults included,
    # so the two can never disagree.
    archive = build_archive({**files, MANIFEST_NAME: json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"})
    with transaction.atomic():
        plugin, created = Plugin.objects.select_for_update().get_or_create(
            slug=manifest["name"],
            defaults={"name": manifest["name"], "description": manifest["description"], "owner": owner},
        )
        if not created:
            _check_owner(plugin, owner)
        if plugin.versions.filter(version=manifest["version"]).exists():
            raise ManifestError.single(
                "version",
                f"{plugin.slug} {manifest['version']} already exists; versions are immutable, so bump the version",
            )
        version = PluginVersion.objects.create(
            plugin=plugin,
            version=manifest["version"],
            manifest=manifest,
            archive=archive,
            sha256=sha256_hex(archive),
            files_digest=digest,
            signature=signature or "",
            signed_by=signed_by,
        )
        if activate:
            _make_active(version)
        metadata = {"version": version.version, "sha256": version.sha256, "activated": activate}
        if signed_by:
            metadata["signedBy"] = signed_by
        record_event(
            AuditEvent.Type.PLUGIN_VERSION_UPLOADED,
            organization=owner,
            actor_id=actor_id,
            target_id=plugin.slug,
            metadata=metadata,
        )
    return version


def _check_owner(plugin, owner):
    if plugin.owner_id == (owner.pk if owner else None):
        return
    if owner is None:
        message = f"{plugin.slug} belongs to the organization {plugin.owner.slug}; install it as that owner"
    elif plugin.owner_id is None:
        message = f"{plugin.slug} is a public plugin; choose another name"
    else:
        message = f"the plugin id {plugin.slug} is taken by another organization; choose another name"
    raise ManifestError.single("name", message)


def activate_version(version, *, actor_id=""):
    """Make this the version that runs when a request names no version;
    activating an older version is how a plugin is rolled back."""
    with transaction.atomic():
        # Lock the plugin so concurrent activations and uploads take turns.
        # Only the plugin's row (`of`): its owner is joined to be read, and
        # PostgreSQL cannot lock the nullable side of that outer join.
        plugin = Plugin.objects.select_for_update(of=("self",)).select_related("owner").get(pk=version.plugin_id)
        previous = plugin.versions.filter(is_active=True).values_list("version", flat=True).first()
        _make_active(version)
        if previous != version.version:
            record_event(
                AuditEvent.Type.PLUGIN_STATE_CHANGED,
                organization=plugin.owner,
                actor_id=actor_id,
                target_id=plugin.slug,
                metadata={"change": "activated", "version": version.version, "previousVersion": previous},
            )


def _make_active(version):
    # The partial unique constraint allows one active version per plugin at
    # every moment, so the old one is switched off before the new one is on.
    PluginVersion.objects.filter(plugin_id=version.plugin_id, is_active=True).exclude(pk=version.pk).update(
        is_active=False
    )
    # By primary key, not by the instance's flag, which may be stale.
    PluginVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True


def set_plugin_enabled(plugin, enabled, *, actor_id=""):
    """Let the plugin run (or refuse its runs with PLUGIN_DISABLED)."""
    with transaction.atomic():
        changed = Plugin.objects.filter(pk=plugin.pk).exclude(enabled=enabled).update(
            enabled=enabled, updated_at=timezone.now()
        )
        if changed:
            record_event(
                AuditEvent.Type.PLUGIN_STATE_CHANGED,
                organization=plugin.owner,
                actor_id=actor_id,
                target_id=plugin.slug,
                metadata={"change": "enabled" if enabled else "disabled"},
            )
    plugin.enabled = enabled


def set_plugin_owner(plugin, owner, *, actor_id=""):
    """Make the plugin private to `owner`, or public (None). Who sees, runs
    and uploads it changes with its owner, so the event is recorded for each
    organization concerned, the one losing it and the one getting it."""
    with transaction.atomic():
        previous = Plugin.objects.select_for_update(of=("self",)).select_related("owner").get(pk=plugin.pk).owner
        if (previous.pk if previous else None) != (owner.pk if owner else None):
            Plugin.objects.filter(pk=plugin.pk).update(owner=owner, updated_at=timezone.now())
            metadata = {
                "change": "owner",
                "owner": owner.slug if owner else None,
                "previousOwner": previous.slug if previous else None,
            }
            for organization in filter(None, (previous, owner)):
                record_event(
                    AuditEvent.Type.PLUGIN_STATE_CHANGED,
                    organization=organization,
                    actor_id=actor_id,
                    target_id=plugin.slug,
                    metadata=metadata,
                )
    plugin.owner = owner


def plugin_files(version):
    """The version's text files as {relative path: text}, ready to send to the
    sandbox (its wheels reach runs unpacked: plugins.packages).

    Archives are immutable and named by their sha256, so decoded ones are
    cached in the process; on a hit the archive bytes are never loaded, so
    callers may `.defer("archive")`.
    """
    return dict(_files_by_sha256(version.sha256))


def stored_file_sizes(version):
    """{relative path: bytes} of every file the version stores, wheels included."""
    return {
        path: len(content if isinstance(content, bytes) else content.encode())
        for path, content in files_from_zip(bytes(version.archive)).items()
    }


def plugin_modules(version):
    """What a run of the version loads: its Python modules compiled
    (plugin_bytecode), or for a JavaScript plugin its .js and .json sources
    as text (Node compiles them in the sandbox)."""
    if runtime_of(version.manifest) == "node":
        return {path: text for path, text in _files_by_sha256(version.sha256).items()
                if javascript.is_source(path) or path.endswith(".json")}
    return plugin_bytecode(version)


def plugin_bytecode(version):
    """The version's Python modules compiled, as {relative path: marshal bytes}.

    Compiling never runs code, so the host may do it; done once per version
    and process, it spares every run the compile (milliseconds for a
    plugin of a few hundred lines). The sandbox runs the same interpreter,
    so the bytecode fits it.
    """
    return _bytecode_by_sha256(version.sha256)


@functools.lru_cache(maxsize=FILES_CACHE_SIZE)
def _bytecode_by_sha256(sha256):
    return {
        path: marshal.dumps(compile(source, f"<plugin>/{path}", "exec", dont_inherit=True))
        for path, source in _files_by_sha256(sha256).items()
        if path.endswith(".py")
    }


@functools.lru_cache(maxsize=FILES_CACHE_SIZE)
def _files_by_sha256(sha256):
    archive = PluginVersion.objects.filter(sha256=sha256).values_list("archive", flat=True).first()
    if archive is None or sha256_hex(bytes(archive)) != sha256:
        raise ManifestError.single("archive", f"no stored archive matches sha256 {sha256}")
    return {path: text for path, text in files_from_zip(bytes(archive)).items() if isinstance(text, str)}
