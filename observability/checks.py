from django.conf import settings
from django.core import checks
from django.db import DatabaseError


@checks.register(checks.Tags.security, deploy=True)
def check_metrics_token_is_set(app_configs, **kwargs):
    if settings.METRICS_TOKEN:
        return []
    return [
        checks.Warning(
            "METRICS_TOKEN is not set: GET /metrics refuses every scrape (under DEBUG it is open to anyone, "
            "and its labels name every organization's private plugins).",
            hint="Set METRICS_TOKEN to a long random string and give it to Prometheus as its bearer token "
            "(deploy/prometheus.yml).",
            id="observability.W001",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def check_keys_match_the_other_nodes(app_configs, **kwargs):
    """A node whose SECRET_KEY or SECRETS_ENCRYPTION_KEY differs from the
    one the deployment's nodes recorded (observability.shared_keys)."""
    from .shared_keys import differing_keys

    try:
        differing = differing_keys()
    except DatabaseError:
        return []  # no database yet, or not reachable: nothing recorded to compare with
    return [
        checks.Error(
            f"{record.name} on this node differs from the one node {record.recorded_by} recorded in the shared "
            f"database: this node cannot read what the others sealed or encrypted, nor they what it does.",
            hint=f"Give every node the same {record.name} in its environment. If every node now has a new one "
            "on purpose, run `manage.py shared_keys --record`.",
            id="observability.E001",
        )
        for record in differing
    ]
