"""How the service is watched: /health, /metrics, /stats and the admin dashboard."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.envelope import error_response
from core.errors import EngineError
from core.offload import off_the_loop
from core.openapi import error_responses
from core.permissions import IsOperator, SessionHoldsPermission, api_key_or_session

from . import dashboard, openapi, prometheus, stats
from .health import UNHEALTHY, run_checks

# /stats and the dashboard show every organization's runs: an admin user
# needs to be allowed to view them, not only to be staff.
OPERATOR_FIGURES_PERMISSION = "executions.view_execution"


class HealthView(APIView):
    authentication_classes = []
    permission_classes = []

    @extend_schema(**openapi.HEALTH_SCHEMA)
    def get(self, request):
        status, checks = run_checks()
        return Response({"status": status, "checks": checks}, status=503 if status == UNHEALTHY else 200)


class MetricsView(APIView):
    authentication_classes = []
    permission_classes = []

    @extend_schema(
        summary="Prometheus metrics",
        description=(
            "Needs `Authorization: Bearer <METRICS_TOKEN>`; refused to everyone while the service has no "
            "METRICS_TOKEN, except under DEBUG, where it is then open."
        ),
        responses={
            (200, "text/plain"): OpenApiResponse(
                OpenApiTypes.STR, examples=[OpenApiExample("Exposition", value=openapi.METRICS_EXAMPLE)]
            ),
            **error_responses("AUTHENTICATION_FAILED"),
        },
    )
    def get(self, request):
        if not prometheus.token_accepted(request.headers.get("Authorization", "")):
            refusal = EngineError("AUTHENTICATION_FAILED", "GET /metrics needs 'Authorization: Bearer <METRICS_TOKEN>'")
            return error_response(refusal, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        body, content_type = off_the_loop(prometheus.render)
        return HttpResponse(body, content_type=content_type)


class StatsView(APIView):
    authentication_classes = api_key_or_session()
    permission_classes = [IsOperator, SessionHoldsPermission]
    session_permission = OPERATOR_FIGURES_PERMISSION

    @extend_schema(
        summary="Worker pool, queue and completed runs (operators)",
        responses={200: OpenApiResponse(
            openapi.StatsSerializer, examples=[OpenApiExample("Stats", value=openapi.STATS_EXAMPLE)]
        )},
    )
    def get(self, request):
        return Response(off_the_loop(stats.operator_stats))


def dashboard_view(request):
    """The admin dashboard (wrapped in admin_view in the URLconf: staff only)."""
    if not request.user.has_perm(OPERATOR_FIGURES_PERMISSION):
        raise PermissionDenied
    window = request.GET.get("window", "hour")
    if window not in dashboard.WINDOWS:
        window = "hour"
    refresh = request.GET.get("refresh", "")
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "refresh": int(refresh) if refresh in map(str, dashboard.REFRESH_CHOICES) else None,
        "refresh_choices": dashboard.REFRESH_CHOICES,
        **off_the_loop(dashboard.build, window),
    }
    return TemplateResponse(request, "admin/observability/dashboard.html", context)
