from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated

from core.openapi import error_responses
from core.permissions import SessionHoldsPermission, api_key_or_session

from ..events import visible_events
from . import openapi
from .serializers import EventQuerySerializer, EventSerializer


class EventPagination(CursorPagination):
    # A cursor stays right while new events arrive, unlike page numbers.
    ordering = "-timestamp"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def get_page_size(self, request):
        # DRF falls back to the default size on a limit it cannot read, so a
        # client's typo went unnoticed; above the maximum it still gives the maximum.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or int(raw) < 1:
            raise ValidationError({self.page_size_query_param: f"a whole number from 1 (at most {self.max_page_size} "
                                   "events are given per page)"})
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = f"Events per page, {self.page_size} by default; at most {self.max_page_size}."
        return parameters

    def decode_cursor(self, request):
        # DRF answers a cursor it cannot read with 404, as if /events were gone.
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({"cursor": "not a cursor this endpoint gave out"}) from None


class EventListView(ListAPIView):
    authentication_classes = api_key_or_session()
    permission_classes = [IsAuthenticated, SessionHoldsPermission]
    session_permission = "audit.view_auditevent"
    serializer_class = EventSerializer
    pagination_class = EventPagination

    @extend_schema(
        summary="The audit log",
        description="An organization reads its own events; operators read all. Newest first, paginated by cursor.",
        parameters=[EventQuerySerializer],
        examples=[OpenApiExample("Event", value=openapi.EVENT_EXAMPLE, response_only=True)],
        responses={200: EventSerializer(many=True), **error_responses("VALIDATION_ERROR", "PERMISSION_DENIED")},
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
