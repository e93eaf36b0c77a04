"""/health follows the qcluster: unhealthy (503) while it is stopped, healthy
again once it is back.

The session's `cluster` fixture may be running in this test session too, and
its heartbeat would keep /health healthy. Heartbeats live in the Django
cache, so this test gives its own cluster and this process a cache of their
own (a VAR_DIR of their own), in which only its cluster beats.
"""

import pytest
from rest_framework.test import APIClient

from tests.cluster import Cluster
from tests.factories import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def own_cache(tmp_path, monkeypatch, settings):
    # Read by the cluster's processes (environment) and by this one (settings).
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    # What VAR_DIR would otherwise change for the cluster: the key its
    # heartbeats are signed with and the sandbox slots it shares with others.
    monkeypatch.setenv("SECRET_KEY", settings.SECRET_KEY)
    monkeypatch.setenv("SANDBOX_LOCK_DIR", settings.SANDBOX_LOCK_DIR)
    # Under `make test-scale` the cache is the shared Redis, where the
    # session's cluster beats too: this cluster takes the file cache instead.
    monkeypatch.delenv("REDIS_URL", raising=False)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }


def health():
    response = APIClient().get("/health")
    return response.status_code, response.json()["checks"]["cluster"]


def test_health_is_unhealthy_without_the_cluster_and_healthy_with_it(transactional_db, own_cache):
    status, cluster_check = health()
    assert (status, cluster_check["status"]) == (503, "unhealthy")
    assert cluster_check["clusters"] == 0

    cluster = Cluster(workers=1).start()
    try:
        wait_for(lambda: health()[0] == 200, timeout=20)
        status, cluster_check = health()
        assert cluster_check["status"] == "healthy"
        assert cluster_check["clusters"] == 3 and cluster_check["workers"] == 3
    finally:
        cluster.stop()

    # A stopped cluster's heartbeat lapses within 3 s.
    wait_for(lambda: health()[0] == 503, timeout=20)
    assert health()[1]["status"] == "unhealthy"

    cluster = Cluster(workers=1).start()
    try:
        wait_for(lambda: health()[0] == 200, timeout=20)
        assert health()[1]["status"] == "healthy"
    finally:
        cluster.stop()
