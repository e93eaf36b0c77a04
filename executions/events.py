"""The audit log's single writer."""

from .models import ExecutionEvent


def record_event(event_type, *, organization=None, actor_id="", target_id="", metadata=None):
    """Append one audit event; call it inside the transaction of the change it records."""
    return ExecutionEvent.objects.create(
        type=event_type,
        organization=organization,
        actor_id=actor_id or "",
        target_id=str(target_id or ""),
        metadata=metadata or {},
    )
