"""supervisord's event listener (deploy/supervisord.conf): every service
process that exits unexpectedly, and that supervisord therefore starts
again, is recorded as a restart (an audit event, which /health reads, and
the restart counter).

It speaks supervisord's listener protocol on stdin/stdout, so it writes
nothing else there; its own failures go to stderr and never stop it.
"""

import sys
import traceback

from django.core.management.base import BaseCommand
from supervisor import childutils

from executions.supervision import record_process_restart


class Command(BaseCommand):
    help = "Run as supervisord's event listener: record unexpected exits of the service's processes."

    def handle(self, *args, **options):
        while True:
            headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
            if headers.get("eventname") == "PROCESS_STATE_EXITED":
                fields, _ = childutils.eventdata(payload + "\n")
                if fields.get("expected") == "0":
                    try:
                        record_process_restart(
                            fields.get("processname", "?"),
                            supervisor="supervisord",
                            pid=int(fields.get("pid") or 0),
                            detail=f"exited unexpectedly (was {fields.get('from_state', '?')})",
                        )
                    except Exception:
                        traceback.print_exc(file=sys.stderr)
            childutils.listener.ok(sys.stdout)
