"""core.sql: hand-written statements give back the same instances the ORM
would, on either database, and write what the ORM would have written."""

import datetime as dt
import uuid

import pytest
from django.db import connection, connections
from django.utils import timezone

from audit.models import AuditEvent
from core import sql
from executions.models import Execution
from tests.factories import EXAMPLES, install_folder

pytestmark = pytest.mark.django_db

EXECUTION_COLUMNS = sql.Columns(Execution, "e")


@pytest.fixture
def execution(org):
    version = install_folder(EXAMPLES / "text-tools")
    return Execution.objects.create(
        organization=org, plugin_version=version, action="wordCount", params={"b": 1, "a": [1.5, None, True]},
        timeout_ms=1000, memory_limit_mb=64, long_running=True, priority="high",
        start_deadline=timezone.now() + dt.timedelta(seconds=5), result={"ok": True}, logs=["one"],
    )


def read_back(pk):
    return EXECUTION_COLUMNS.get(pk)


def field_values(instance):
    return {field.attname: getattr(instance, field.attname) for field in Execution._meta.concrete_fields}


def test_a_row_read_by_hand_is_the_instance_the_orm_reads(execution):
    by_hand = read_back(execution.pk)
    by_orm = Execution.objects.get(pk=execution.pk)
    assert field_values(by_hand) == field_values(by_orm)
    assert isinstance(by_hand.pk, uuid.UUID)
    assert by_hand.queued_at.tzinfo is not None
    assert by_hand.long_running is True and by_hand.cache_hit is False
    assert list(by_hand.params) == ["b", "a"]


def test_columns_left_out_are_deferred(execution):
    progress = sql.Columns(Execution, "e", only=("id", "status"))
    instance = progress.get(execution.pk)
    assert instance.status == "queued"
    assert instance.get_deferred_fields() >= {"params", "result", "timeout_ms"}


def test_a_missing_row_is_does_not_exist_as_with_the_orm(db):
    with pytest.raises(Execution.DoesNotExist):
        EXECUTION_COLUMNS.get(uuid.uuid4())


def test_an_insert_writes_what_save_would_and_takes_the_new_key(org):
    inserted = sql.Insert(AuditEvent)(AuditEvent(type="plugin_uploaded", organization=org,
                                                 target_id="x", metadata={"k": [1, 2]}))
    assert inserted.pk is not None and not inserted._state.adding
    stored = AuditEvent.objects.get(pk=inserted.pk)
    assert (stored.type, stored.organization_id, stored.metadata) == ("plugin_uploaded", org.pk, {"k": [1, 2]})
    assert stored.timestamp is not None


def test_an_insert_of_a_model_with_its_own_key_applies_defaults_and_auto_now_add(execution):
    copy = Execution(organization=execution.organization, plugin_version=execution.plugin_version, action="wordCount",
                     params={}, timeout_ms=5, memory_limit_mb=64)
    sql.Insert(Execution)(copy)
    stored = Execution.objects.get(pk=copy.pk)
    assert stored.status == "queued" and stored.logs == [] and stored.queued_at is not None


def test_update_sets_the_values_where_the_condition_holds_and_counts_the_rows(execution):
    finished = timezone.now()
    where = "id = %s AND status = %s"
    key = sql.db_value(Execution, "id", execution.pk)
    assert sql.update(Execution, {"status": "success", "finished_at": finished, "result": [1]}, where, [key, "queued"]) == 1
    assert sql.update(Execution, {"status": "error"}, where, [key, "queued"]) == 0
    stored = Execution.objects.get(pk=execution.pk)
    assert (stored.status, stored.finished_at, stored.result) == ("success", finished, [1])


@pytest.fixture
def pool(settings):
    if connection.vendor != "sqlite":
        pytest.skip("the pool is SQLite's")
    settings.SQLITE_CONNECTION_POOL = 1
    pool = type(connections["default"])._pool
    yield pool
    while pool:
        pool.pop().close()


def opened():
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    return wrapper


def test_a_connection_closed_outside_a_transaction_is_taken_again(pool):
    first = opened()
    kept = first.connection
    first.close()
    second = opened()
    assert second.connection is kept
    second.close()


def test_one_closed_inside_a_transaction_is_not_kept(pool):
    first = opened()
    kept = first.connection
    kept.execute("BEGIN")
    first.close()
    assert kept not in pool
    second = opened()
    assert second.connection is not kept
    second.close()


def test_the_pool_keeps_at_most_its_size(pool):
    first, second = opened(), opened()
    first.close()
    second.close()
    assert len(pool) == 1


@pytest.mark.django_db(transaction=True)
def test_a_waiting_caller_gives_its_connection_back_to_the_pool(pool):
    connection.ensure_connection()
    kept = connection.connection
    sql.release_connection()
    assert connection.connection is None and kept in pool


@pytest.mark.django_db(transaction=True)
def test_a_waiting_caller_keeps_its_connection_where_its_database_has_no_pool(settings):
    # On PostgreSQL without POSTGRES_CONNECTION_POOL, whatever the web's
    # SQLite setting says: it pools nothing there.
    settings.SQLITE_CONNECTION_POOL = 0 if connection.vendor == "sqlite" else 32
    connection.ensure_connection()
    kept = connection.connection
    sql.release_connection()
    assert connection.connection is kept
