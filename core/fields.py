"""Model fields shared by the apps."""

import json
from functools import partial

from django.db import models


class VerbatimJSONField(models.JSONField):
    """A JSON document kept as it was written: its keys in their order, its
    numbers as spelled. On PostgreSQL this is the `json` type, not `jsonb`,
    which sorts keys (a plugin's params would reach it reordered) and stores
    numbers as decimals (1e308 came back a 309-digit integer, which a plugin
    then computes with differently). The price: no key lookups or indexes
    on it in SQL. Elsewhere (SQLite) it is a plain JSONField: text already."""

    def db_type(self, connection):
        return "json" if connection.vendor == "postgresql" else super().db_type(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        if connection.vendor != "postgresql":
            return super().get_db_prep_value(value, connection, prepared)
        from psycopg.types.json import Json

        if not prepared:
            value = self.get_prep_value(value)
        # Sent as `json`, so that the server keeps the text as it is.
        return Json(value, dumps=partial(json.dumps, cls=self.encoder))

    def from_db_value(self, value, expression, connection):
        # psycopg decodes `json` itself (from the kept text: nothing lost).
        if connection.vendor == "postgresql":
            return value
        return super().from_db_value(value, expression, connection)
