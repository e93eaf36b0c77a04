"""An organization's stored secrets: written and deleted through the API, listed by name, never read."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import EngineError

from ..models import OrganizationSecret
from ..secrets import delete_secret, set_secret
from . import openapi
from .serializers import SecretSerializer, SecretWriteSerializer


class SecretListView(APIView):
    @extend_schema(**openapi.SECRET_LIST_SCHEMA)
    def get(self, request):
        secrets = OrganizationSecret.objects.filter(organization=request.user.organization)
        return Response({"secrets": SecretSerializer(secrets, many=True).data})


class SecretDetailView(APIView):
    @extend_schema(**openapi.SECRET_PUT_SCHEMA)
    def put(self, request, name):
        if not isinstance(request.data, dict):
            raise EngineError("VALIDATION_ERROR", 'the body must be a JSON object: {"value": "..."}')
        serializer = SecretWriteSerializer(data={**request.data, "name": name})
        serializer.is_valid(raise_exception=True)
        record, created = set_secret(
            request.user.organization, name, serializer.validated_data["value"], actor_id=str(request.user)
        )
        return Response(SecretSerializer(record).data, status=201 if created else 200)

    @extend_schema(**openapi.SECRET_DELETE_SCHEMA)
    def delete(self, request, name):
        if not delete_secret(request.user.organization, name, actor_id=str(request.user)):
            raise EngineError("NOT_FOUND", f"no secret {name!r}")
        return Response(status=204)
