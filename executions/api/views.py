import uuid

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import EngineError, shortened
from core.permissions import IsOperator
from core.request_size import reject_oversized_body
from plugins.models import Plugin

from .. import cache
from ..models import Execution
from ..submission import (
    effective_timeout_ms,
    request_fingerprint,
    resolve_action,
    submit_execution,
    validate_params,
    wait_for_outcome,
)
from . import openapi
from .presenters import execution_response
from .serializers import ExecuteRequestSerializer


class ExecuteView(APIView):
    @extend_schema(**openapi.EXECUTE_SCHEMA)
    def post(self, request):
        reject_oversized_body(request)
        serializer = ExecuteRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        organization = request.user.organization
        if data.get("organizationId") not in (None, organization.slug):
            raise EngineError("PERMISSION_DENIED", "organizationId does not match the API key's organization")
        plugin_version, action = resolve_action(organization, data["pluginId"], data["actionName"], data.get("version"))
        validate_params(action, data["params"])
        idempotency_key = request.headers.get("Idempotency-Key", "").strip()
        if len(idempotency_key) > 200:
            raise EngineError("VALIDATION_ERROR", "the Idempotency-Key header is longer than 200 characters")
        execution, quota = submit_execution(
            idempotency_key=idempotency_key,
            fingerprint=request_fingerprint(request.data) if idempotency_key else "",
            organization=organization,
            plugin_version=plugin_version,
            action_name=data["actionName"],
            params=data["params"],
            secrets=data["secrets"],
            timeout_ms=effective_timeout_ms(data.get("timeout"), action),
            # A token's subject is the actor; a key's caller names its own.
            actor_id=request.user.actor_id or data["actorId"],
        )
        if data["run_async"]:
            location = request.build_absolute_uri(reverse("execution-detail", args=[execution.id]))
            headers = {"Location": location, **quota.headers()}
            body = {"executionId": str(execution.id), "status": execution.status, "quota": quota.as_dict()}
            return Response(body, status=202, headers=headers)
        if execution.is_terminal:
            return execution_response(execution, quota)
        return execution_response(wait_for_outcome(execution), quota)


class ExecutionDetailView(APIView):
    @extend_schema(**openapi.EXECUTION_DETAIL_SCHEMA)
    def get(self, request, execution_id):
        executions = Execution.objects.with_plugin()
        if not request.user.is_staff:
            executions = executions.filter(organization=request.user.organization)
        try:
            execution = executions.filter(pk=uuid.UUID(execution_id)).first()
        except ValueError:
            execution = None
        if execution is None:
            raise EngineError("EXECUTION_NOT_FOUND", f"no execution {shortened(execution_id, 100)!r}")
        return execution_response(execution, as_record=True)


class CacheClearView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(**openapi.CACHE_CLEAR_SCHEMA)
    def post(self, request):
        removed = cache.clear(actor_id=str(request.user))
        return Response({"cleared": True, "entriesRemoved": removed})


class CacheInvalidateView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(**openapi.CACHE_INVALIDATE_SCHEMA)
    def post(self, request, plugin_id):
        if not Plugin.objects.filter(slug=plugin_id).exists():
            raise EngineError("PLUGIN_NOT_FOUND", f"no plugin {plugin_id!r}")
        removed = cache.invalidate_plugin(plugin_id, actor_id=str(request.user))
        return Response({"pluginId": plugin_id, "invalidated": True, "entriesRemoved": removed})
