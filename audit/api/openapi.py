"""The OpenAPI description of /events, next to its view."""

from core.openapi import EXECUTION_ID

# One event: the schema generator wraps it in a page (next, previous, results).
EVENT_EXAMPLE = {
    "id": 412, "type": "plugin_action_executed", "organizationId": "acme", "actorId": "person_123",
    "targetId": "text-tools", "timestamp": "2026-11-26T21:40:12.345678Z",
    "metadata": {"executionId": EXECUTION_ID, "pluginId": "text-tools", "actionName": "wordCount",
                 "status": "success", "errorType": None, "executionTime": 24, "memoryUsed": 15519744,
                 "retryCount": 0, "cacheHit": False, "quotaUsed": 1, "quotaRemaining": 9999},
}
