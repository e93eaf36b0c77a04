"""The plugin API: list, upload, look at, activate (or roll back), enable and disable.

A caller sees the public plugins and its own organization's private ones
(staff keys see all); another organization's private plugin does not exist
for it (PLUGIN_NOT_FOUND). A plugin is changed by its owner or a staff key.
"""

from django.db.models import Prefetch
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import EngineError
from core.request_size import reject_oversized_body
from quotas.models import Organization

from ..archive import MAX_ARCHIVE_BYTES, load_uploaded_plugin
from ..manifest import ManifestError
from ..models import Plugin, PluginVersion
from ..services import activate_version, install_version, set_plugin_enabled
from . import openapi
from .serializers import (
    ActivateSerializer,
    PluginSerializer,
    PluginUploadSerializer,
    UploadedVersionSerializer,
)

# The archive at its cap, plus room for the multipart framing and the other fields.
MAX_UPLOAD_BODY_BYTES = MAX_ARCHIVE_BYTES + 1024 * 1024


def visible_plugins(principal):
    plugins = Plugin.objects.select_related("owner").prefetch_related(
        Prefetch("versions", queryset=PluginVersion.objects.defer("archive").order_by("-created_at"))
    )
    return plugins if principal.is_staff else plugins.visible_to(principal.organization)


def visible_plugin(principal, plugin_id):
    plugin = visible_plugins(principal).filter(slug=plugin_id).first()
    if plugin is None:
        raise EngineError("PLUGIN_NOT_FOUND", f"no plugin {plugin_id!r}")
    return plugin


def managed_plugin(principal, plugin_id):
    """A plugin the caller may change: its organization's own, or any for a staff key."""
    plugin = visible_plugin(principal, plugin_id)
    if not principal.is_staff and plugin.owner_id != principal.organization.pk:
        raise EngineError("PERMISSION_DENIED", f"{plugin_id!r} is a public plugin; only operators (staff keys) change it")
    return plugin


def upload_owner(principal, owner_slug):
    """The organization an upload's plugin belongs to; None for public.

    A staff key uploads public plugins, or another organization's with
    `owner`; any other key uploads its own organization's private plugins.
    """
    if not principal.is_staff:
        if owner_slug not in (None, principal.organization.slug):
            raise EngineError("PERMISSION_DENIED", "an organization uploads only its own plugins; leave out `owner`")
        return principal.organization
    if owner_slug is None:
        return None
    organization = Organization.objects.filter(slug=owner_slug).first()
    if organization is None:
        raise EngineError(
            "VALIDATION_ERROR",
            f"no organization {owner_slug!r}",
            details=[{"field": "owner", "message": "no such organization"}],
        )
    return organization


def plugin_response(principal, plugin_id):
    return Response(PluginSerializer(visible_plugin(principal, plugin_id)).data)


class PluginListView(APIView):
    # A plugin's code is uploaded as files; listing takes no body at all.
    parser_classes = [MultiPartParser]

    @extend_schema(**openapi.PLUGIN_LIST_SCHEMA)
    def get(self, request):
        return Response({"plugins": PluginSerializer(visible_plugins(request.user), many=True).data})

    @extend_schema(**openapi.PLUGIN_UPLOAD_SCHEMA)
    def post(self, request):
        reject_oversized_body(request, MAX_UPLOAD_BODY_BYTES)
        upload = PluginUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        owner = upload_owner(request.user, data.get("owner"))
        try:
            manifest, files = load_uploaded_plugin(
                archive=data.get("archive"), source=data.get("source"), manifest=data.get("manifest")
            )
            version = install_version(
                manifest,
                files,
                owner=owner,
                activate=data["activate"],
                actor_id=str(request.user),
                signature=data.get("signature"),
            )
        except ManifestError as error:
            raise EngineError("VALIDATION_ERROR", f"the plugin was not stored: {error}", details=error.errors) from None
        headers = {"Location": request.build_absolute_uri(reverse("plugin-detail", args=[version.plugin.slug]))}
        return Response(UploadedVersionSerializer(version).data, status=201, headers=headers)


class PluginDetailView(APIView):
    @extend_schema(**openapi.PLUGIN_DETAIL_SCHEMA)
    def get(self, request, plugin_id):
        return plugin_response(request.user, plugin_id)


class PluginActivateView(APIView):
    """Make a stored version the one that runs; an older one rolls the plugin back."""

    @extend_schema(**openapi.PLUGIN_ACTIVATE_SCHEMA)
    def post(self, request, plugin_id):
        plugin = managed_plugin(request.user, plugin_id)
        body = ActivateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        requested = body.validated_data["version"]
        version = plugin.versions.defer("archive").filter(version=requested).first()
        if version is None:
            raise EngineError("PLUGIN_NOT_FOUND", f"plugin {plugin_id!r} has no version {requested!r}")
        activate_version(version, actor_id=str(request.user))
        return plugin_response(request.user, plugin_id)


class PluginEnabledView(APIView):
    enabled = None  # set by the URL: True for /enable, False for /disable

    @extend_schema(**openapi.PLUGIN_ENABLED_SCHEMA)
    def post(self, request, plugin_id):
        set_plugin_enabled(managed_plugin(request.user, plugin_id), self.enabled, actor_id=str(request.user))
        return plugin_response(request.user, plugin_id)
