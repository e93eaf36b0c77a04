"""How the service is watched: /metrics, /stats, /events and the admin dashboard."""

from django.contrib import admin
from django.http import HttpResponse
from django.template.response import TemplateResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from quotas.authentication import ApiKeyAuthentication
from quotas.permissions import IsOperator

from . import dashboard, metrics, openapi, stats
from .errors import ApiError
from .events import visible_events
from .serializers import EventQuerySerializer, EventSerializer

# Operators read these from scripts (API key) and from the admin (session).
API_KEY_OR_SESSION = [ApiKeyAuthentication, SessionAuthentication]


class MetricsView(APIView):
    authentication_classes = []
    permission_classes = []

    @extend_schema(
        summary="Prometheus metrics",
        description="Open, unless METRICS_TOKEN is set: then `Authorization: Bearer <METRICS_TOKEN>`.",
        responses={
            (200, "text/plain"): OpenApiResponse(
                OpenApiTypes.STR, examples=[OpenApiExample("Exposition", value=openapi.METRICS_EXAMPLE)]
            ),
            **openapi.error_responses("AUTHENTICATION_FAILED"),
        },
    )
    def get(self, request):
        if not metrics.token_accepted(request.headers.get("Authorization", "")):
            raise ApiError(
                "AUTHENTICATION_FAILED", "GET /metrics needs 'Authorization: Bearer <METRICS_TOKEN>'",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        body, content_type = metrics.render()
        return HttpResponse(body, content_type=content_type)


class StatsView(APIView):
    authentication_classes = API_KEY_OR_SESSION
    permission_classes = [IsOperator]

    @extend_schema(
        summary="Worker pool, queue and completed runs (operators)",
        responses={200: OpenApiResponse(
            openapi.StatsSerializer, examples=[OpenApiExample("Stats", value=openapi.STATS_EXAMPLE)]
        )},
    )
    def get(self, request):
        return Response(stats.operator_stats())


class EventPagination(CursorPagination):
    # A cursor stays right while new events arrive, unlike page numbers.
    ordering = "-timestamp"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


class EventListView(ListAPIView):
    authentication_classes = API_KEY_OR_SESSION
    serializer_class = EventSerializer
    pagination_class = EventPagination

    @extend_schema(
        summary="The audit log",
        description="An organization reads its own events; operators read all. Newest first, paginated by cursor.",
        parameters=[EventQuerySerializer],
        examples=[OpenApiExample("Event", value=openapi.EVENT_EXAMPLE, response_only=True)],
        responses={200: EventSerializer(many=True), **openapi.error_responses("VALIDATION_ERROR", "PERMISSION_DENIED")},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = EventQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        return visible_events(
            self.request.user,
            organization_slug=filters.get("organizationId"),
            types=filters.get("type"),
            target_id=filters.get("targetId"),
            actor_id=filters.get("actorId"),
            since=filters.get("since"),
            until=filters.get("until"),
        )


def dashboard_view(request):
    """The admin dashboard (wrapped in admin_view in the URLconf: staff only)."""
    window = request.GET.get("window", "hour")
    if window not in dashboard.WINDOWS:
        window = "hour"
    context = {**admin.site.each_context(request), "title": "Dashboard", **dashboard.build(window)}
    return TemplateResponse(request, "admin/executions/dashboard.html", context)
