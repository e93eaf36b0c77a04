from django.conf import settings
from django.core import checks


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
