"""Installing, activating and reading plugin versions.

Every change to which version of a plugin runs goes through here, so the
one-active-version rule and the audit trail hold whichever door (API, admin,
management command) it came through.
"""

import functools
import json

from django.db import transaction

from executions.events import record_event

from .archive import build_archive, files_from_zip, sha256_hex
from .manifest import MANIFEST_NAME, ManifestError, validate_plugin
from .models import Plugin, PluginVersion

# Decoded archives kept per process; a worker serving many plugins holds at
# most this many (each at most a few MiB).
FILES_CACHE_SIZE = 256


def install_version(manifest, files, *, owner=None, activate=True, actor_id=""):
    """Validate and store a new version of the plugin named by the manifest.

    `owner` is the organization uploading it (None for an operator installing
    a public plugin); only the plugin's owner may add versions. Raises
    ManifestError for an invalid plugin, a plugin owned by someone else, or a
    version that already exists.
    """
    manifest = validate_plugin(manifest, files)
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
        )
        if activate:
            _make_active(version)
        record_event(
            "plugin_version_uploaded",
            organization=owner,
            actor_id=actor_id,
            target_id=plugin.slug,
            metadata={"version": version.version, "sha256": version.sha256, "activated": activate},
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


def activate_version(version):
    """Make this the version that runs when a request names no version."""
    with transaction.atomic():
        # Lock the plugin so concurrent activations and uploads take turns.
        Plugin.objects.select_for_update().get(pk=version.plugin_id)
        _make_active(version)


def _make_active(version):
    # The partial unique constraint allows one active version per plugin at
    # every moment, so the old one is switched off before the new one is on.
    PluginVersion.objects.filter(plugin_id=version.plugin_id, is_active=True).exclude(pk=version.pk).update(
        is_active=False
    )
    # By primary key, not by the instance's flag, which may be stale.
    PluginVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True


def set_plugin_enabled(plugin, enabled):
    plugin.enabled = enabled
    plugin.save(update_fields=["enabled", "updated_at"])


def plugin_files(version):
    """The version's files as {relative path: text}, ready to send to the sandbox.

    Archives are immutable and named by their sha256, so decoded ones are
    cached in the process; on a hit the archive bytes are never loaded, so
    callers may `.defer("archive")`.
    """
    return dict(_files_by_sha256(version.sha256))


@functools.lru_cache(maxsize=FILES_CACHE_SIZE)
def _files_by_sha256(sha256):
    archive = PluginVersion.objects.filter(sha256=sha256).values_list("archive", flat=True).first()
    if archive is None or sha256_hex(bytes(archive)) != sha256:
        raise ManifestError.single("archive", f"no stored archive matches sha256 {sha256}")
    return files_from_zip(bytes(archive))
