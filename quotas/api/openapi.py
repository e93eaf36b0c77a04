"""The OpenAPI description of the secret endpoints and of API-key authentication."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from core.openapi import LinkedResponse, error_responses

from .serializers import SecretGrantsSerializer, SecretSerializer, SecretValueSerializer


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "quotas.authentication.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "API key (pex_<prefix>_<secret>) or JWT",
            "description": "The key decides the organization and so the tier; staff keys may call operator endpoints.",
        }


SECRET_EXAMPLE = {
    "name": "API_KEY", "plugins": ["weather"], "createdAt": "2026-11-26T21:40:12Z", "updatedAt": "2026-11-26T21:40:12Z",
}
# The secret's name, from the response of the operations that store one.
SECRET_LINKS = {
    "DeleteSecret": {"operationId": "secrets_destroy", "parameters": {"name": "$response.body#/name"}},
    "GrantSecret": {"operationId": "secrets_plugins_update", "parameters": {"name": "$response.body#/name"}},
}
SECRET_RESPONSE = LinkedResponse(SecretSerializer, examples=[OpenApiExample("Secret", value=SECRET_EXAMPLE)],
                                 links=SECRET_LINKS)
SECRET_NAME = OpenApiParameter("name", str, OpenApiParameter.PATH, pattern="^[A-Z][A-Z0-9_]{0,63}$",
                               description="UPPER_SNAKE_CASE, up to 64 characters")
SECRET_LIST_SCHEMA = dict(
    summary="The organization's stored secrets, by name (values are never returned)",
    operation_id="secrets_list",
    responses={200: OpenApiResponse(
        inline_serializer("SecretList", {"secrets": SecretSerializer(many=True)}),
        examples=[OpenApiExample("Secrets", value={"secrets": [SECRET_EXAMPLE]})],
    )},
)
SECRET_PUT_SCHEMA = dict(
    summary="Store or replace a secret",
    request=SecretValueSerializer,
    parameters=[SECRET_NAME],
    responses={201: SECRET_RESPONSE, 200: SECRET_RESPONSE, **error_responses("VALIDATION_ERROR")},
    examples=[OpenApiExample("Store", value={"value": "a-long-random-api-key"}, request_only=True)],
)
SECRET_DELETE_SCHEMA = dict(
    summary="Delete a secret",
    parameters=[SECRET_NAME],
    responses={204: None, **error_responses("NOT_FOUND")},
)
SECRET_GRANTS_PUT_SCHEMA = dict(
    summary="Set the plugins a secret is granted to",
    description=(
        "A plugin receives the secret in `ctx.secrets` only when its manifest declares the name and it is "
        "listed here. The list replaces the previous one; `[]` revokes every grant."
    ),
    request=SecretGrantsSerializer,
    parameters=[SECRET_NAME],
    responses={200: SECRET_RESPONSE, **error_responses("VALIDATION_ERROR", "NOT_FOUND", "PLUGIN_NOT_FOUND")},
    examples=[OpenApiExample("Grant", value={"plugins": ["weather"]}, request_only=True)],
)


SIGNING_SECRET_RESPONSE = OpenApiResponse(
    inline_serializer("CallbackSigningSecret", {"secret": serializers.CharField(), "createdAt": serializers.DateTimeField()}),
    examples=[OpenApiExample("Signing secret", value={"secret": "whsec_4kq…", "createdAt": "2026-11-26T21:40:12Z"})],
)
SIGNING_SECRET_GET_SCHEMA = dict(
    summary="The organization's callback signing secret (made on first request)",
    description="Callbacks carry `X-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of \"<t>.<body>\" with this secret>`.",
    responses={200: SIGNING_SECRET_RESPONSE},
)
SIGNING_SECRET_ROTATE_SCHEMA = dict(
    summary="Replace the callback signing secret",
    description="Callbacks sent from now on, retries of earlier ones included, are signed with the new secret.",
    request=None,
    responses={200: SIGNING_SECRET_RESPONSE},
)
