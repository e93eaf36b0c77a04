"""An organization's stored secrets: written, granted to plugins and deleted
through the API, listed by name, never read."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import EngineError

from ..callback_signing import rotate_signing_secret, signing_secret
from ..models import OrganizationSecret
from ..secrets import delete_secret, set_secret, set_secret_grants
from . import openapi
from .serializers import SecretGrantsSerializer, SecretSerializer, SecretWriteSerializer


def organization_secrets(organization):
    return OrganizationSecret.objects.filter(organization=organization).prefetch_related("plugins")


class SecretListView(APIView):
    @extend_schema(**openapi.SECRET_LIST_SCHEMA)
    def get(self, request):
        secrets = organization_secrets(request.user.organization)
        return Response({"secrets": SecretSerializer(secrets, many=True).data})


class SecretDetailView(APIView):
    @extend_schema(**openapi.SECRET_PUT_SCHEMA)
    def put(self, request, name):
        if not isinstance(request.data, dict):
            raise EngineError("VALIDATION_ERROR", 'the body must be a JSON object: {"value": "..."}')
        serializer = SecretWriteSerializer(data={**request.data, "name": name})
        serializer.is_valid(raise_exception=True)
        record, created = set_secret(
            request.user.organization, serializer.validated_data["name"], serializer.validated_data["value"],
            actor_id=str(request.user),
        )
        return Response(SecretSerializer(record).data, status=201 if created else 200)

    @extend_schema(**openapi.SECRET_DELETE_SCHEMA)
    def delete(self, request, name):
        if not delete_secret(request.user.organization, name, actor_id=str(request.user)):
            raise EngineError("NOT_FOUND", f"no secret {name!r}")
        return Response(status=204)


class SecretGrantsView(APIView):
    @extend_schema(**openapi.SECRET_GRANTS_PUT_SCHEMA)
    def put(self, request, name):
        organization = request.user.organization
        secret = organization_secrets(organization).filter(name=name).first()
        if secret is None:
            raise EngineError("NOT_FOUND", f"no secret {name!r}")
        if not isinstance(request.data, dict):
            raise EngineError("VALIDATION_ERROR", 'the body must be a JSON object: {"plugins": ["plugin-id", ...]}')
        serializer = SecretGrantsSerializer(data=request.data, context={"organization": organization})
        serializer.is_valid(raise_exception=True)
        set_secret_grants(secret, serializer.validated_data["plugins"], actor_id=str(request.user))
        return Response(SecretSerializer(organization_secrets(organization).get(pk=secret.pk)).data)


def signing_secret_body(value, created_at):
    return {"secret": value, "createdAt": created_at.isoformat().replace("+00:00", "Z")}


class CallbackSigningSecretView(APIView):
    """The organization's callback signing secret: read (made on first need), rotated."""

    @extend_schema(**openapi.SIGNING_SECRET_GET_SCHEMA)
    def get(self, request):
        return Response(signing_secret_body(*signing_secret(request.user.organization, actor_id=str(request.user))))


class CallbackSigningSecretRotateView(APIView):
    @extend_schema(**openapi.SIGNING_SECRET_ROTATE_SCHEMA)
    def post(self, request):
        value, created_at = rotate_signing_secret(request.user.organization, actor_id=str(request.user))
        return Response(signing_secret_body(value, created_at))
