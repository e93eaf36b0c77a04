"""An elizaOS plugin through the real API (examples/eliza-weather, uploaded
with POST /plugins and run with POST /execute on the real cluster and
sandbox): its actions answer by their manifest names, a `validate` that
declines is the caller's 400 and never opens the plugin's breaker, and the
organization's stored secret, granted to the plugin, is what
runtime.getSetting reads. (Its egress: tests/plugins/test_example_eliza_weather.py.)"""

import json

import pytest

from executions.models import Execution
from tests.plugins.helpers import EXAMPLES, example_zip, upload, zip_of

pytestmark = pytest.mark.slow


def execute(api, action, params, **body):
    return api.post("/execute", {"pluginId": "eliza-weather", "actionName": action, "params": params, **body},
                    format="json")


@pytest.fixture
def eliza_weather(live, api):
    response = upload(api, example_zip("eliza-weather"))
    assert response.status_code == 201, response.content
    return response.json()


def test_an_eliza_action_runs_and_is_cached(eliza_weather, api):
    response = execute(api, "convertTemperature", {"value": 100, "from": "C", "to": "K"})
    assert response.status_code == 200, response.json()
    assert response.json()["result"] == {
        "returned": {"success": True, "text": "100 °C is 373.15 K", "values": {"value": 373.15, "unit": "K"}},
        "responses": [{"text": "100 °C is 373.15 K", "actions": ["CONVERT_TEMPERATURE"]}],
    }
    again = execute(api, "convertTemperature", {"value": 100, "from": "C", "to": "K"})
    assert again.json()["cacheHit"] is True and again.json()["result"] == response.json()["result"]


def test_a_declining_validate_is_a_400_that_never_opens_the_breaker(eliza_weather, api):
    for _ in range(6):
        declined = execute(api, "convertTemperature", {"value": -1, "from": "K", "to": "C"})
        assert declined.status_code == 400, declined.json()
        assert declined.json()["error"]["type"] == "VALIDATION_ERROR" and declined.json()["error"]["retryable"] is False
        assert "CONVERT_TEMPERATURE declined" in declined.json()["error"]["message"]
    assert execute(api, "convertTemperature", {"value": 0, "from": "C", "to": "F"}).status_code == 200


@pytest.fixture
def eliza_weather_offline(live, api):
    """The example with its API address moved off its allowlist: the
    handler's request is refused by the egress broker, without a network."""
    folder = EXAMPLES / "eliza-weather"
    manifest = json.loads((folder / "plugin.json").read_text())
    manifest["settings"]["OPENWEATHER_API_URL"] = "https://weather.invalid"
    files = [(path.relative_to(folder).as_posix(), path.read_bytes()) for path in sorted(folder.rglob("*"))
             if path.is_file() and path.name != "plugin.json"]
    response = upload(api, zip_of(("plugin.json", json.dumps(manifest).encode()), *files))
    assert response.status_code == 201, response.content
    return response.json()


def test_get_setting_reads_the_organization_s_granted_secret(eliza_weather_offline, api):
    # No key: GET_WEATHER's validate declines before any request is made.
    assert execute(api, "getWeather", {"city": "Oslo"}).json()["error"]["type"] == "VALIDATION_ERROR"
    key = "ow-" + "3" * 24
    assert api.put("/secrets/OPENWEATHER_API_KEY", {"value": key}, format="json").status_code in (200, 201)
    # Stored but not granted to the plugin: still no key.
    assert execute(api, "getWeather", {"city": "Oslo"}).json()["error"]["type"] == "VALIDATION_ERROR"
    granted = api.put("/secrets/OPENWEATHER_API_KEY/plugins", {"plugins": ["eliza-weather"]}, format="json")
    assert granted.status_code == 200, granted.json()
    # Granted: validate lets it through and the handler makes its request,
    # which the broker refuses (its host is not on the allowlist): the
    # handler ran, and the key stayed hidden.
    response = execute(api, "getWeather", {"city": "Oslo"}, timeout=5000)
    assert response.json()["error"]["type"] in ("SANDBOX_VIOLATION", "PLUGIN_ERROR"), response.json()
    execution = Execution.objects.get(pk=response.json()["executionId"])
    assert "[info] weather for Oslo in metric units" in execution.logs
    assert key not in response.content.decode()
