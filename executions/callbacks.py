"""Callbacks: an asynchronous run's final body POSTed to the URL its caller
gave (`callbackUrl`), signed with the organization's signing secret.

The URL is checked when the run is submitted (`check_callback_url`) and
again, against the address really connected to, at every attempt: the same
egress rules as a plugin's requests (egress/), but any public host may be
named, and an operator's CALLBACK_ALLOWED_HOSTS may be private. The
delivery is a row written in the transaction that ends the execution
(`schedule_delivery`), so a crash loses none; a courier process of each
cluster (executions.queue.courier) sends it, without taking a worker, and
each attempt is recorded with its audit event (`record_attempt`), again
with exponential back-off until delivered or out of attempts.
"""

import datetime as dt
import hashlib
import hmac
import json
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.events import record_event
from audit.models import AuditEvent
from core.errors import EngineError
from egress import EgressDenied, EgressError, EgressFailed, EgressPolicy, default_resolver, fetch, resolve_url
from quotas.callback_signing import signing_secret

from . import metrics
from .models import CallbackDelivery
from .queue.wakeups import wake

MAX_CALLBACK_URL_LENGTH = 2000
# The receiver's answer counts by its status; its body is read no further.
RESPONSE_READ_BYTES = 1024
# A submission waits no longer than this for the callback host's addresses.
SUBMISSION_DNS_SECONDS = 2
# A result (MAX_RESULT_BYTES) and logs, with room for JSON's escapes.
MAX_BODY_BYTES = 8 * 1024 * 1024


def courier_topic(priority):
    """What the courier of a priority's cluster is woken through when a delivery is due."""
    return f"callbacks-{priority}"


# How callback hosts are resolved, at submission and before each attempt
# (the egress suite's tests answer for DNS with resolvers of their own).
resolver = default_resolver


def callback_policy(timeout_seconds=None):
    return EgressPolicy(
        resolver=resolver,
        any_public_host=True,
        allow_any_port=True,
        trusted_hosts=frozenset(settings.CALLBACK_ALLOWED_HOSTS),
        max_redirects=0,
        timeout_seconds=timeout_seconds or settings.CALLBACK_TIMEOUT_SECONDS,
        max_response_bytes=RESPONSE_READ_BYTES,
        truncate_response=True,
        max_request_bytes=MAX_BODY_BYTES,
    )


def check_callback_url(url):
    """VALIDATION_ERROR for a URL no callback may be sent to: not http(s),
    credentials in it, or a host that is (or resolves to) a private,
    loopback or link-local address and is not in CALLBACK_ALLOWED_HOSTS.
    A name that does not resolve now is accepted: it is checked again
    before every attempt."""
    if len(url) > MAX_CALLBACK_URL_LENGTH:
        _refuse(f"callbackUrl is longer than {MAX_CALLBACK_URL_LENGTH} characters")
    try:
        resolve_url(callback_policy(SUBMISSION_DNS_SECONDS), url)
    except EgressDenied as refusal:
        _refuse(f"callbackUrl is refused: {refusal.message}")
    except EgressFailed:
        pass


def _refuse(message):
    raise EngineError("VALIDATION_ERROR", message, details=[{"field": "callbackUrl", "message": message}])


def schedule_delivery(execution):
    """In the transaction that ends `execution`: its callback, due at once."""
    if not execution.callback_url:
        return
    CallbackDelivery.objects.create(
        execution_id=execution.pk, url=execution.callback_url, priority=execution.priority,
        next_attempt_at=timezone.now(),
    )
    transaction.on_commit(lambda: wake(courier_topic(execution.priority)))


def claim_due(priority):
    """The next delivery of `priority` due now, leased to this courier (its
    next attempt pushed past the attempt's timeout, so that no other courier
    sends it meanwhile, and one that dies leaves it to be sent again), or None."""
    now = timezone.now()
    due = (
        CallbackDelivery.objects.filter(state=CallbackDelivery.State.PENDING, priority=priority, next_attempt_at__lte=now)
        .order_by("next_attempt_at").values_list("pk", flat=True).first()
    )
    if due is None:
        return None
    # An attempt ends within its timeout (the egress deadline covers it all):
    # twice that is ample, and a courier that died leaves it no longer.
    lease = dt.timedelta(seconds=2 * settings.CALLBACK_TIMEOUT_SECONDS + 1)
    taken = CallbackDelivery.objects.filter(
        pk=due, state=CallbackDelivery.State.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + lease)
    if not taken:
        return None
    return CallbackDelivery.objects.select_related("execution__organization").get(pk=due)


def signature(secret, timestamp, body):
    """The X-Signature header's value: HMAC-SHA256 of "<timestamp>.<body>"."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def attempt(delivery, render_body):
    """Send `delivery` once and record how it went. `render_body(execution)`
    makes the body the first time (the API's presenter; this layer knows no
    HTTP); every later attempt sends the same bytes, signed anew."""
    execution = delivery.execution
    if not delivery.body:
        delivery.body = json.dumps(render_body(execution), separators=(",", ":"))
        CallbackDelivery.objects.filter(pk=delivery.pk).update(body=delivery.body)
    secret, _ = signing_secret(execution.organization, actor_id=courier_actor(delivery))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "plugin-engine-callbacks/1",
        "X-Execution-Id": str(execution.pk),
        "X-Callback-Attempt": str(delivery.attempts + 1),
        "X-Signature": signature(secret, int(time.time()), delivery.body),
    }
    started = time.monotonic()
    try:
        response = fetch(callback_policy(), "POST", delivery.url, headers=headers, body=delivery.body)
    except EgressError as failure:
        status_code, error = None, _reason(failure)
    else:
        status_code, error = response.status, ""
    return record_attempt(delivery, status_code=status_code, error=error,
                          duration_ms=round((time.monotonic() - started) * 1000))


def _reason(failure):
    if failure.code == "too_many_redirects":
        return "too_many_redirects: the receiver answered with a redirect, which is not followed"
    return f"{failure.code}: {failure.message}"[:500]


def courier_actor(delivery):
    return f"courier:{delivery.priority}"


def backoff_seconds(attempts):
    """How long after its `attempts`-th failed attempt a delivery is tried again."""
    return min(settings.CALLBACK_RETRY_BASE_SECONDS * 2 ** (attempts - 1), settings.CALLBACK_RETRY_MAX_SECONDS)


def record_attempt(delivery, *, status_code, error, duration_ms):
    """One attempt's outcome and its callback_attempted event, together:
    delivered (a 2xx answer), failed for good (CALLBACK_MAX_ATTEMPTS
    reached) or due again after its back-off. Returns the new state, or None
    if another courier recorded this attempt first."""
    number = delivery.attempts + 1
    now = timezone.now()
    next_attempt_at = None
    if status_code is not None and 200 <= status_code < 300:
        state = CallbackDelivery.State.DELIVERED
    elif number >= settings.CALLBACK_MAX_ATTEMPTS:
        state = CallbackDelivery.State.FAILED
    else:
        state = CallbackDelivery.State.PENDING
        next_attempt_at = now + dt.timedelta(seconds=backoff_seconds(number))
    if status_code is not None and not error and state != CallbackDelivery.State.DELIVERED:
        error = f"the receiver answered {status_code}"
    with transaction.atomic():
        changed = CallbackDelivery.objects.filter(
            pk=delivery.pk, state=CallbackDelivery.State.PENDING, attempts=delivery.attempts
        ).update(
            state=state, attempts=number, next_attempt_at=next_attempt_at, last_status_code=status_code,
            last_error=error, delivered_at=now if state == CallbackDelivery.State.DELIVERED else None,
            # Kept while it may be sent again; the execution holds it all anyway.
            **({} if state == CallbackDelivery.State.PENDING else {"body": ""}),
        )
        if not changed:
            return None
        record_event(
            AuditEvent.Type.CALLBACK_ATTEMPTED,
            organization=delivery.execution.organization,
            actor_id=courier_actor(delivery),
            target_id=str(delivery.execution_id),
            metadata={
                "executionId": str(delivery.execution_id), "url": delivery.url, "attempt": number,
                "statusCode": status_code, "error": error or None, "durationMs": duration_ms, "state": state,
                "nextAttemptAt": next_attempt_at.isoformat() if next_attempt_at else None,
            },
        )
        transaction.on_commit(lambda: metrics.CALLBACK_ATTEMPTS.labels(state).inc())
    return state


def callback_summary(execution):
    """What GET /executions/<id> shows of a callback (never the secret):
    its URL, its state (`waiting` until the run ends) and attempts."""
    if not execution.callback_url:
        return None
    delivery = CallbackDelivery.objects.filter(pk=execution.pk).first()
    if delivery is None:
        return {"url": execution.callback_url, "state": "waiting", "attempts": 0}
    return {
        "url": delivery.url,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "lastStatusCode": delivery.last_status_code,
        "lastError": delivery.last_error or None,
        "deliveredAt": delivery.delivered_at.isoformat().replace("+00:00", "Z") if delivery.delivered_at else None,
    }
