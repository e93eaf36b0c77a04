import time
import uuid

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.envelope import engine_error_body
from core.errors import EngineError, shortened
from core.permissions import IsOperator
from core.request_size import reject_oversized_body
from plugins.models import Plugin

from .. import cache
from ..callbacks import check_callback_url
from ..models import Execution
from ..submission import (
    effective_timeout_ms,
    ended,
    request_fingerprint,
    resolve_action,
    submit_execution,
    validate_params,
    wait_for_outcome,
)
from . import openapi
from .presenters import execution_body, execution_response
from .serializers import BatchItemSerializer, ExecuteBatchSerializer, ExecuteRequestSerializer


class ExecuteView(APIView):
    @extend_schema(**openapi.EXECUTE_SCHEMA)
    def post(self, request):
        reject_oversized_body(request)
        serializer = ExecuteRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        idempotency_key = request.headers.get("Idempotency-Key", "").strip()
        if len(idempotency_key) > 200:
            raise EngineError("VALIDATION_ERROR", "the Idempotency-Key header is longer than 200 characters")
        execution, quota = submit(request, data, request.data, idempotency_key, data["run_async"])
        if data["run_async"]:
            headers = {"Location": execution_location(request, execution), **quota.headers()}
            return Response(queued_body(execution, quota), status=202, headers=headers)
        if execution.is_terminal:
            return execution_response(execution, quota)
        return execution_response(wait_for_outcome(execution), quota)


def submit(request, data, body, idempotency_key, run_async):
    """One validated /execute body (or batch item) through to submit_execution:
    (execution, quota snapshot), or the EngineError that refuses it."""
    organization = request.user.organization
    if data.get("organizationId") not in (None, organization.slug):
        raise EngineError("PERMISSION_DENIED", "organizationId does not match the API key's organization")
    callback_url = data.get("callbackUrl", "")
    if callback_url:
        if not run_async:
            raise EngineError(
                "VALIDATION_ERROR", "callbackUrl is for asynchronous runs: add \"async\": true, or drop it",
                details=[{"field": "callbackUrl", "message": "needs async: true"}],
            )
        check_callback_url(callback_url)
    plugin_version, action = resolve_action(organization, data["pluginId"], data["actionName"], data.get("version"))
    validate_params(action, data["params"])
    return submit_execution(
        idempotency_key=idempotency_key,
        fingerprint=request_fingerprint(body) if idempotency_key else "",
        organization=organization,
        plugin_version=plugin_version,
        action_name=data["actionName"],
        params=data["params"],
        secrets=data["secrets"],
        timeout_ms=effective_timeout_ms(data.get("timeout"), action),
        # A token's subject is the actor; a key's caller names its own.
        actor_id=request.user.actor_id or data["actorId"],
        callback_url=callback_url,
    )


def execution_location(request, execution):
    return request.build_absolute_uri(reverse("execution-detail", args=[execution.id]))


def queued_body(execution, quota):
    return {"executionId": str(execution.id), "status": execution.status, "quota": quota.as_dict()}


class ExecuteBatchView(APIView):
    @extend_schema(**openapi.EXECUTE_BATCH_SCHEMA)
    def post(self, request):
        """Each item is admitted on its own, as one /execute would be (its
        quota count, idempotency, cache, refusal); then a synchronous batch
        waits for its runs, all together, up to timeoutMs."""
        reject_oversized_body(request)
        serializer = ExecuteBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        batch = serializer.validated_data
        run_async = batch["run_async"]
        admitted = [
            admit_item(request, item, raw_item, run_async) for item, raw_item in zip(batch["items"], request.data["items"])
        ]
        deadline = time.monotonic() + batch["timeoutMs"] / 1000 if "timeoutMs" in batch else None
        answers = []
        for outcome in admitted:
            if isinstance(outcome, EngineError):
                answers.append(error_envelope(outcome))
                continue
            execution, quota = outcome
            if run_async:
                body = queued_body(execution, quota)
            else:
                if not execution.is_terminal:
                    # Past the batch's timeout: as it is now, queued or running.
                    execution = wait_for_outcome(execution, deadline) or ended(execution)
                body, _ = execution_body(execution, quota)
            body["location"] = execution_location(request, execution)
            answers.append(body)
        return Response({"items": answers}, status=200)


def admit_item(request, item, raw_item, run_async):
    """One validated batch item (`raw_item` as sent, for its idempotency
    fingerprint): (execution, quota), or the EngineError that refuses it."""
    try:
        return submit(request, item, raw_item, item["idempotencyKey"].strip(), run_async)
    except EngineError as refusal:
        return refusal


def error_envelope(refusal):
    """A refused item's answer: the envelope /execute would have answered,
    with its Retry-After as `retryAfter`."""
    body = engine_error_body(refusal)
    if refusal.retry_after is not None:
        body["retryAfter"] = refusal.retry_after
    return body


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
