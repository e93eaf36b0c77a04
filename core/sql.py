"""Hand-written SQL for the statements every run pays for.

Building a query through the ORM costs 0.3–0.8 ms of Python per statement
(filter trees, joins, compilation); running it on SQLite costs about
0.04 ms. A run costs about twenty statements between the web and its
worker, so that building was most of the service's CPU per run
(docs/benchmarks.md, "Where a run's CPU goes"). Those statements are
written as SQL that SQLite and PostgreSQL both accept, next to the code
that owns them; everything off that path stays on the ORM.

What comes back is still ordinary model instances: `Columns` turns a row
into one with the ORM's own converters (aware datetimes, UUIDs, JSON,
booleans as each backend stores them) and `Model.from_db`, and `db_value`
turns a Python value into the parameter the ORM would have sent.
"""

from django.conf import settings
from django.db import connection
from django.utils.functional import cached_property


def fetch_one(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def fetch_all(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def execute(sql, params=()):
    """Run a statement; returns how many rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def update(model, values, where, params=()):
    """UPDATE `model`'s rows matching `where` (SQL, with `params`), setting
    `values` ({field name: value}, sent as the ORM would); returns how many
    rows changed."""
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in values]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    return execute(
        f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {where}",
        [field.get_db_prep_save(value, connection) for field, value in zip(fields, values.values())] + list(params),
    )


def db_value(model, field_name, value):
    """`value` as the ORM would send it for `model.field_name` (SQLite keeps
    UUIDs as hex text and datetimes as UTC text, for instance)."""
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)


def for_update_skip_locked():
    """The clause that takes a row lock without waiting for rows others hold,
    where the database has row locks (PostgreSQL); SQLite's IMMEDIATE
    transactions hold the whole database instead, so it needs none."""
    return " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""


class Columns:
    """Some of a model's columns as a select list under `alias`, and the
    instance a row of them makes; the columns left out are deferred, as
    with `QuerySet.only()`."""

    def __init__(self, model, alias, *, only=None, exclude=()):
        self.model = model
        self.fields = [
            field for field in model._meta.concrete_fields
            if (only is None or field.name in only) and field.name not in exclude
        ]
        self.alias = alias
        self.attnames = [field.attname for field in self.fields]
        self.width = len(self.fields)
        self._converters = {}

    @cached_property
    def sql(self):
        quote = connection.ops.quote_name
        return ", ".join(f"{self.alias}.{quote(field.column)}" for field in self.fields)

    def converters(self):
        """Per field, its column expression and the ORM's converters from
        this backend's values (looked up once per backend: they depend on
        it, not on the row)."""
        vendor = connection.vendor
        if vendor not in self._converters:
            table = self.model._meta.db_table
            columns = [field.get_col(table) for field in self.fields]
            self._converters[vendor] = [
                (column, connection.ops.get_db_converters(column) + field.get_db_converters(connection))
                for field, column in zip(self.fields, columns)
            ]
        return self._converters[vendor]

    def get(self, pk):
        """The instance of the row whose primary key is `pk`; the model's
        DoesNotExist if there is none, as with `QuerySet.get()`."""
        quote = connection.ops.quote_name
        meta = self.model._meta
        row = fetch_one(
            f"SELECT {self.sql} FROM {quote(meta.db_table)} {self.alias} WHERE {self.alias}.{quote(meta.pk.column)} = %s",
            [meta.pk.get_db_prep_value(pk, connection)],
        )
        if row is None:
            raise self.model.DoesNotExist(f"no {meta.object_name} {pk}")
        return self.instance(row)

    def instance(self, row, start=0):
        """The model instance held by `row[start:start + width]`."""
        values = list(row[start:start + self.width])
        for index, (column, converters) in enumerate(self.converters()):
            if values[index] is not None:
                for converter in converters:
                    values[index] = converter(values[index], column, connection)
        return self.model.from_db(connection.alias, self.attnames, values)


class Insert:
    """INSERT of a whole model instance, as `Model.save()` on a new row would
    do it (field defaults and `pre_save`, such as auto_now_add, included),
    its SQL built once; an auto-increment key comes back by RETURNING."""

    def __init__(self, model):
        self.model = model
        self.auto_key = model._meta.auto_field
        self.fields = [field for field in model._meta.concrete_fields if field is not self.auto_key]

    @cached_property
    def sql(self):
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in self.fields)
        placeholders = ", ".join(["%s"] * len(self.fields))
        returning = f" RETURNING {quote(self.auto_key.column)}" if self.auto_key else ""
        return f"INSERT INTO {quote(self.model._meta.db_table)} ({columns}) VALUES ({placeholders}){returning}"

    def __call__(self, instance):
        values = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in self.fields]
        if self.auto_key:
            (key,) = fetch_one(self.sql, values)
            setattr(instance, self.auto_key.attname, key)
        else:
            execute(self.sql, values)
        instance._state.adding = False
        instance._state.db = connection.alias
        return instance


def release_connection():
    """Give this thread's connection back to its process's pool while it
    waits (for a run, say), unless it is in a transaction or pooled nowhere:
    a waiting caller then holds no database connection, and a process's
    connections are bounded by the requests it works on, not by those it
    keeps waiting (PostgreSQL's POSTGRES_CONNECTION_POOL, the web's
    SQLITE_CONNECTION_POOL). The next statement takes one again."""
    # Each backend's own pool: the web sets SQLITE_CONNECTION_POOL whatever
    # its database, and on PostgreSQL it pools nothing.
    if connection.vendor == "sqlite":
        pooled = bool(settings.SQLITE_CONNECTION_POOL)
    else:
        pooled = getattr(connection, "pool", None) is not None
    if pooled and connection.connection is not None and not connection.in_atomic_block:
        connection.close()
