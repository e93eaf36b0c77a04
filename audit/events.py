"""The audit log: its single writer, and what a caller may read of it."""

from core import sql
from core.errors import EngineError

from .models import AuditEvent


# Every run writes one: hand-written SQL (core.sql).
_insert_event = sql.Insert(AuditEvent)


def record_event(event_type, *, organization=None, actor_id="", target_id="", metadata=None):
    """Append one audit event; call it inside the transaction of the change it records."""
    return _insert_event(AuditEvent(
        type=event_type,
        organization=organization,
        actor_id=actor_id or "",
        target_id=str(target_id or ""),
        metadata=metadata or {},
    ))


def visible_events(principal, *, organization_slug=None, types=(), target_id=None, actor_id=None, since=None, until=None):
    """The events `principal` may read, filtered: an organization reads its
    own, an operator (staff) reads all or those of `organization_slug`."""
    events = AuditEvent.objects.select_related("organization")
    if principal.is_staff:
        if organization_slug:
            events = events.filter(organization__slug=organization_slug)
    else:
        own = getattr(principal, "organization", None)
        if own is None or organization_slug not in (None, own.slug):
            raise EngineError("PERMISSION_DENIED", "an organization reads only its own events")
        events = events.filter(organization=own)
    if types:
        events = events.filter(type__in=types)
    if target_id:
        events = events.filter(target_id=target_id)
    if actor_id:
        events = events.filter(actor_id=actor_id)
    if since:
        events = events.filter(timestamp__gte=since)
    if until:
        events = events.filter(timestamp__lt=until)
    return events
