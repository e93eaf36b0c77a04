"""State changes of quotas, each atomic with its audit event (API, admin
and commands all call these)."""

from django.db import transaction

from audit.events import record_event
from audit.models import AuditEvent

from .enforcement import utc_today
from .models import DailyUsage


def reset_daily_usage(organizations, *, actor_id=""):
    """Give each organization today's full daily quota back; returns how many
    had usage to reset."""
    reset = 0
    with transaction.atomic():
        for organization in organizations:
            previous = DailyUsage.objects.filter(organization=organization, day=utc_today()).first()
            used = previous.count if previous else 0
            DailyUsage.objects.filter(organization=organization, day=utc_today()).update(count=0)
            record_event(
                AuditEvent.Type.QUOTA_RESET,
                organization=organization,
                actor_id=actor_id,
                target_id=organization.slug,
                metadata={"day": utc_today().isoformat(), "usedBefore": used},
            )
            reset += used > 0
    return reset
