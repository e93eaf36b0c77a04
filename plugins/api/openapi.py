"""The OpenAPI description of the plugin endpoints, next to their views."""

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiExample, inline_serializer

from core.openapi import LinkedResponse, error_responses

from .serializers import (
    ActivateSerializer,
    PluginSerializer,
    PluginUploadSerializer,
    UploadedVersionSerializer,
)


class TextOrFileFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "plugins.api.serializers.TextOrFileField"

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "format": "binary", "description": "plugin.json, as a file or as text"}


class UploadedFileFieldSchema(OpenApiSerializerFieldExtension):
    # drf-spectacular calls a FileField a URI unless request and response components are split.
    target_class = "rest_framework.serializers.FileField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "format": "binary"}


class PluginUploadSchema(OpenApiSerializerExtension):
    """The upload's parts as the server takes them: a zip in `archive`, or a
    module in `source` with its `manifest` (not both: refused, though not
    said here, as schemathesis cannot generate against `not` with files)."""

    target_class = "plugins.api.serializers.PluginUploadSerializer"

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["anyOf"] = [{"required": ["archive"]}, {"required": ["source", "manifest"]}]
        return schema


VERSION_EXAMPLE = {
    "version": "1.2.0", "sha256": "9f2c…", "filesDigest": "41ab…", "active": True,
    "createdAt": "2026-11-26T21:40:12Z", "signed": False, "signedBy": None,
}
PLUGIN_EXAMPLE = {
    "id": "weather", "name": "weather", "description": "Forecasts from api.weather.gov", "enabled": True,
    "public": False, "owner": "acme", "activeVersion": "1.2.0",
    "actions": [{"name": "getForecast", "description": "The forecast for a city", "cacheable": True}],
    "versions": [VERSION_EXAMPLE],
}


def plugin_links(plugin_id):
    """Links from a response naming a plugin (`plugin_id`: where, as a JSON
    pointer) to the operations on it."""
    operations = {
        "GetPlugin": "plugins_retrieve", "ActivateVersion": "plugins_activate_create",
        "EnablePlugin": "plugins_enable_create", "DisablePlugin": "plugins_disable_create",
        "InvalidateCache": "cache_invalidate_create",
    }
    return {name: {"operationId": operation_id, "parameters": {"plugin_id": f"$response.body#{plugin_id}"}}
            for name, operation_id in operations.items()}


PLUGIN_RESPONSE = LinkedResponse(PluginSerializer, examples=[OpenApiExample("Plugin", value=PLUGIN_EXAMPLE)],
                                 links=plugin_links("/id"))
PLUGIN_CHANGE_ERRORS = error_responses("PLUGIN_NOT_FOUND", "PERMISSION_DENIED")
PLUGIN_LIST_SCHEMA = dict(
    summary="The plugins the caller can run: public ones and its organization's own",
    operation_id="plugins_list",
    responses={200: LinkedResponse(
        inline_serializer("PluginList", {"plugins": PluginSerializer(many=True)}),
        examples=[OpenApiExample("Plugins", value={"plugins": [PLUGIN_EXAMPLE]})],
        links=plugin_links("/plugins/0/id"),
    )},
)
PLUGIN_UPLOAD_SCHEMA = dict(
    summary="Upload a plugin version",
    description="Multipart: a zip in `archive`, or a module in `source` with its `manifest` (plugin.json).",
    request={"multipart/form-data": PluginUploadSerializer},
    responses={
        201: LinkedResponse(UploadedVersionSerializer, examples=[
            OpenApiExample("Uploaded", value={"pluginId": "weather", **VERSION_EXAMPLE})],
            links=plugin_links("/pluginId")),
        **error_responses("VALIDATION_ERROR", "PERMISSION_DENIED"),
    },
)
PLUGIN_DETAIL_SCHEMA = dict(
    summary="One plugin with its versions",
    responses={200: PLUGIN_RESPONSE, **error_responses("PLUGIN_NOT_FOUND")},
)
PLUGIN_ACTIVATE_SCHEMA = dict(
    summary="Make a stored version the one that runs (an older one rolls back)",
    request=ActivateSerializer,
    responses={200: PLUGIN_RESPONSE, **PLUGIN_CHANGE_ERRORS},
    examples=[OpenApiExample("Roll back", value={"version": "1.1.0"}, request_only=True)],
)
PLUGIN_ENABLED_SCHEMA = dict(
    summary="Enable or disable a plugin (its owner or operators)",
    request=None,
    responses={200: PLUGIN_RESPONSE, **PLUGIN_CHANGE_ERRORS},
)
