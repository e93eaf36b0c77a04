"""Admission of a run against its organization's daily and concurrent quotas.

`admit` must be called inside the transaction that creates the execution: on
SQLite that transaction is IMMEDIATE (one writer at a time), on PostgreSQL
the organization row is locked, so the count of runs in flight and the new
run's insert can't interleave with another request's. The daily count only
moves by a conditional UPDATE, which is atomic on both.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from core import sql

from .models import DailyUsage

CONCURRENCY_RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class QuotaSnapshot:
    used: int
    limit: int | None
    reset_at: dt.datetime

    @property
    def remaining(self):
        return None if self.limit is None else max(0, self.limit - self.used)

    def as_dict(self):
        return {"used": self.used, "remaining": self.remaining, "limit": self.limit}

    def headers(self):
        headers = {"X-RateLimit-Reset": str(int(self.reset_at.timestamp()))}
        if self.limit is not None:
            headers["X-RateLimit-Limit"] = str(self.limit)
            headers["X-RateLimit-Remaining"] = str(self.remaining)
        return headers


class QuotaRefused(Exception):
    def __init__(self, error_type, message, retry_after, snapshot):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.retry_after = retry_after
        self.snapshot = snapshot


def utc_today():
    return timezone.now().astimezone(dt.timezone.utc).date()


def next_utc_midnight():
    tomorrow = utc_today() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time.min, tzinfo=dt.timezone.utc)


def seconds_to_next_utc_midnight():
    return max(1, int((next_utc_midnight() - timezone.now()).total_seconds()) + 1)


# Every run reads or moves its organization's count for the day, so these
# statements are hand-written SQL (core.sql).


def usage_today(organization):
    row = sql.fetch_one(
        'SELECT "count" FROM quotas_dailyusage WHERE organization_id = %s AND day = %s',
        [organization.pk, sql.db_value(DailyUsage, "day", utc_today())],
    )
    return snapshot(organization, row[0] if row else 0)


def snapshot(organization, used):
    return QuotaSnapshot(used=used, limit=organization.daily_limit, reset_at=next_utc_midnight())


def admit(organization, count_in_flight):
    """Count one more run for `organization` or raise QuotaRefused.

    `count_in_flight(organization)` counts its runs queued or running (the
    executions app owns them); it is called after the organization's row is
    locked. Call inside `transaction.atomic()`; the caller inserts the queued
    execution in the same transaction so that it holds the concurrent slot.
    """
    # The row lock serializes admissions on PostgreSQL; SQLite's IMMEDIATE
    # transactions admit one at a time already, and it has no row locks.
    # NO KEY: rows that merely refer to the organization (a cache hit's
    # execution and event, inserted after it counted its day) must not wait
    # for it while this waits for their day's count: that deadlocked.
    if connection.features.has_select_for_update:
        sql.fetch_one("SELECT 1 FROM quotas_organization WHERE id = %s FOR NO KEY UPDATE", [organization.pk])
    if count_in_flight(organization) >= organization.concurrent_limit:
        raise QuotaRefused(
            "CONCURRENCY_LIMIT",
            f"{organization.concurrent_limit} execution(s) already queued or running for this organization",
            CONCURRENCY_RETRY_AFTER_SECONDS,
            usage_today(organization),
        )
    return consume_daily(organization)


def consume_daily(organization):
    """Add one to today's count unless that would pass the daily limit: one
    conditional UPDATE, atomic on both databases, that returns the new count."""
    today = utc_today()
    limit = organization.daily_limit
    used = _count_one(organization, today, limit)
    if used is None:
        # The day's first run has no row to count in yet.
        DailyUsage.objects.get_or_create(organization=organization, day=today)
        used = _count_one(organization, today, limit)
    if used is None:
        raise QuotaRefused(
            "QUOTA_EXCEEDED",
            f"the daily limit of {limit} executions is used up; it resets at midnight UTC",
            seconds_to_next_utc_midnight(),
            QuotaSnapshot(used=limit, limit=limit, reset_at=next_utc_midnight()),
        )
    return snapshot(organization, used)


def _count_one(organization, day, limit):
    """The day's count after adding one, or None if there is no row for the
    day or it is at `limit` already."""
    row = sql.fetch_one(
        'UPDATE quotas_dailyusage SET "count" = "count" + 1 WHERE organization_id = %s AND day = %s'
        + ('' if limit is None else ' AND "count" < %s') + ' RETURNING "count"',
        [organization.pk, sql.db_value(DailyUsage, "day", day), *([] if limit is None else [limit])],
    )
    return None if row is None else row[0]
