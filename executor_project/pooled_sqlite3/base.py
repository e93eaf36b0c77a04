"""SQLite as django-prometheus instruments it, with a gevent web process's
connections kept in a pool.

Under gevent each request runs in a greenlet of its own and Django's
connections belong to the greenlet: kept, they pile up with the greenlets
gone; closed when each request ends (DB_CONN_MAX_AGE=0, gunicorn.conf.py),
every request pays for a new one (the file opened, Django's SQL functions
registered, the PRAGMAs run): 9 % of the web's CPU at 100 runs/s. Here a
connection closed outside a transaction goes back to a pool of its process
instead, and the next request takes it as it is.

Only where SQLITE_CONNECTION_POOL is above 0 (gunicorn.conf.py sets it for
the web): a process that forks, as a cluster's sentinel does, must close
its connections before, never keep them (a connection must not cross a fork).
"""

import threading

from django.conf import settings
from django_prometheus.db.backends.sqlite3 import base


class DatabaseFeatures(base.DatabaseFeatures):
    pass


class DatabaseWrapper(base.DatabaseWrapper):
    _pool = []
    _pool_lock = threading.Lock()

    def get_new_connection(self, conn_params):
        if settings.SQLITE_CONNECTION_POOL:
            with self._pool_lock:
                if self._pool:
                    return self._pool.pop()
        return super().get_new_connection(conn_params)

    def _close(self):
        kept = self.connection
        if settings.SQLITE_CONNECTION_POOL and kept is not None and not kept.in_transaction:
            with self._pool_lock:
                if len(self._pool) < settings.SQLITE_CONNECTION_POOL:
                    self._pool.append(kept)
                    return
        super()._close()
