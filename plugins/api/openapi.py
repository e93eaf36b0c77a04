"""The OpenAPI description of the plugin endpoints, next to their views."""

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer

from core.openapi import error_responses

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
PLUGIN_RESPONSE = OpenApiResponse(PluginSerializer, examples=[OpenApiExample("Plugin", value=PLUGIN_EXAMPLE)])
PLUGIN_CHANGE_ERRORS = error_responses("PLUGIN_NOT_FOUND", "PERMISSION_DENIED")
PLUGIN_LIST_SCHEMA = dict(
    summary="The plugins the caller can run: public ones and its organization's own",
    operation_id="plugins_list",
    responses={200: OpenApiResponse(
        inline_serializer("PluginList", {"plugins": PluginSerializer(many=True)}),
        examples=[OpenApiExample("Plugins", value={"plugins": [PLUGIN_EXAMPLE]})],
    )},
)
PLUGIN_UPLOAD_SCHEMA = dict(
    summary="Upload a plugin version",
    description="Multipart: a zip in `archive`, or a module in `source` with its `manifest` (plugin.json).",
    request={"multipart/form-data": PluginUploadSerializer},
    responses={
        201: OpenApiResponse(UploadedVersionSerializer, examples=[
            OpenApiExample("Uploaded", value={"pluginId": "weather", **VERSION_EXAMPLE})]),
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
