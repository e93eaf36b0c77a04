"""A cluster's courier process: sends the callbacks of its priority's
executions (executions.callbacks), one at a time, then waits for the next
one due. It runs beside the workers, never in one: a slow receiver holds
up callbacks, never runs. Its sentinel starts it, starts it again if it
dies, and stops it last."""

import ctypes
import logging
import signal
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from .. import callbacks
from ..api.presenters import callback_body
from ..models import Execution
from .wakeups import Waiter
from .worker import CLAIM_RETRY_SECONDS, signal_when_parent_dies

logger = logging.getLogger(__name__)


PR_SET_NAME = 15


def name_process(name):
    """The name `ps` and psutil show (15 bytes at most): a courier is told
    from its cluster's workers, which share its command line."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def render_body(execution):
    return callback_body(Execution.objects.with_plugin().get(pk=execution.pk))


def serve(priority):
    """Until SIGTERM (after the attempt in hand): deliver what is due."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal_when_parent_dies(signal.SIGTERM)
    name_process(f"courier-{priority}")
    with Waiter(callbacks.courier_topic(priority)) as waiter:
        while not stopping:
            try:
                delivery = callbacks.claim_due(priority)
                if delivery is None:
                    waiter.wait(settings.CALLBACK_POLL_SECONDS)
                    continue
                callbacks.attempt(delivery, render_body)
            except DatabaseError:
                logger.exception("the %s courier could not reach the database", priority)
                close_old_connections()
                time.sleep(CLAIM_RETRY_SECONDS)
            except Exception:
                # Its lease lapses and it is sent again; the courier goes on.
                logger.exception("the %s courier failed on a delivery", priority)
