"""What the service's supervisors report: a process that died and was
started again (a cluster's worker, by its sentinel; a cluster or the web
server, by supervisord through `manage.py record_process_events`)."""

from django.db import transaction

from audit.events import record_event
from audit.models import AuditEvent

from . import metrics


def record_process_restart(process, *, supervisor, pid=None, detail=""):
    """One restart: an audit event (which /health reads: `degraded` while a
    restart is recent) and the restart counter."""
    with transaction.atomic():
        record_event(
            AuditEvent.Type.PROCESS_RESTARTED,
            actor_id=supervisor,
            target_id=process,
            metadata={"process": process, "supervisor": supervisor, "pid": pid, "detail": detail[:500]},
        )
        transaction.on_commit(lambda: metrics.PROCESS_RESTARTS.labels(process, supervisor).inc())
