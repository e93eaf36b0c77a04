"""The result cache is shared and bounded: an organization storing many
distinct results must push out its own entries, not everyone's."""

import pytest

from executions import cache
from executions.models import CachedResult
from tests.factories import install_source, make_execution

ECHO = "def echo(params, ctx):\n    return params\n"


@pytest.mark.django_db
def test_a_tenant_flooding_the_cache_evicts_its_own_entries(make_org, settings):
    settings.CACHE_MAX_ENTRIES = 10
    version = install_source("echo", ECHO, {"echo": {"handler": "echo", "params": {"type": "object"}, "cacheable": True}})
    quiet, flooder = make_org("quiet"), make_org("flooder")
    quiet_run = make_execution(quiet, version, action="echo")
    flooder_run = make_execution(flooder, version, action="echo")
    for index in range(3):
        cache.store(f"q{index}".ljust(64, "-"), quiet_run, {"n": index})
    for index in range(50):
        cache.store(f"f{index}".ljust(64, "-"), flooder_run, {"n": index})

    assert CachedResult.objects.count() == 10
    assert [cache.lookup(f"q{index}".ljust(64, "-")) for index in range(3)] == [{"n": 0}, {"n": 1}, {"n": 2}]
    kept = CachedResult.objects.filter(organization=flooder).order_by("created_at").values_list("key", flat=True)
    assert [key.rstrip("-") for key in kept] == [f"f{index}" for index in range(43, 50)]
