"""The elizaOS example plugin (examples/eliza-weather) through the real
sandbox and its elizaOS adapter: each manifest example runs, the actions
answer as documented, and GET_WEATHER reaches OpenWeather through the real
egress broker (`egress.fetch` with the manifest's allowlist), here a local
server standing in for it: its host resolves to 127.0.0.1, and the plugin's
OPENWEATHER_API_URL setting names that server's port.

No Django here (`-p no:django` runs it)."""

import base64
import json
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from egress import EgressDenied, EgressFailed, EgressPolicy, fetch
from plugins.archive import load_plugin_source
from sandbox import ALL_LAYERS, ForkServerClient, RunRequest
from tests.factories import EXAMPLES

pytestmark = pytest.mark.slow

MANIFEST, FILES = load_plugin_source(EXAMPLES / "eliza-weather")
API_KEY = "ow-key-" + "5" * 20


class OpenWeather(BaseHTTPRequestHandler):
    """OpenWeather's /data/2.5/weather, for Oslo only; a wrong key is 401."""

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        type(self).seen.append({"path": url.path, "query": query, "host": self.headers["Host"]})
        if query.get("appid") != [API_KEY]:
            self.answer(401, {"cod": 401, "message": "Invalid API key"})
        elif query.get("q") != ["Oslo"]:
            self.answer(404, {"cod": "404", "message": "city not found"})
        else:
            metric = query.get("units") == ["metric"]
            self.answer(200, {"name": "Oslo", "sys": {"country": "NO"}, "weather": [{"description": "light rain"}],
                              "main": {"temp": 4.2 if metric else 39.56, "feels_like": 1.3 if metric else 34.34,
                                       "humidity": 87},
                              "wind": {"speed": 3.6}})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def client():
    client = ForkServerClient(lock_dir=tempfile.mkdtemp(prefix="eliza-weather-locks-"), uid_base=263000,
                              required_layers=list(ALL_LAYERS))
    yield client
    client.close()


@pytest.fixture(scope="module")
def openweather():
    OpenWeather.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), OpenWeather)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def broker(port):
    """The egress broker as the worker runs it (`egress.fetch`, the
    manifest's allowlist), but for the local server: the allowed host
    resolves to 127.0.0.1 and the test's port is allowed."""
    policy = EgressPolicy(allowed_domains=MANIFEST["network"]["allowedDomains"], permitted_addresses=frozenset({"127.0.0.1"}),
                          allow_any_port=True, resolver=lambda host, port: ["127.0.0.1"], timeout_seconds=5)

    def handle(frame):
        try:
            body = base64.b64decode(frame["body"]) if frame.get("body") else None
            response = fetch(policy, frame["method"], frame["url"], headers=frame.get("headers") or {}, body=body)
        except EgressDenied as error:
            return {"ok": False, "kind": "denied", "message": str(error)}
        except EgressFailed as error:
            return {"ok": False, "kind": "failed", "message": str(error)}
        return {"ok": True, "status": response.status, "headers": dict(response.headers), "url": response.url,
                "body": base64.b64encode(response.body).decode()}

    return handle


def run(client, action, params, secrets=None, port=None, api_url=None):
    settings = dict(MANIFEST["settings"])
    if port is not None:
        settings["OPENWEATHER_API_URL"] = api_url or f"http://api.openweathermap.org:{port}"
    request = RunRequest(
        execution_id=str(uuid.uuid4()),
        modules={path: text for path, text in FILES.items() if path.endswith((".js", ".json"))},
        entrypoint=MANIFEST["entrypoint"], handler=MANIFEST["actions"][action]["handler"], params=params,
        timeout_ms=10000, memory_bytes=MANIFEST["limits"]["memoryMb"] << 20, runtime="node",
        adapter=MANIFEST["adapter"], settings=settings, secrets=secrets or {},
    )
    return client.run(request, egress_handler=broker(port) if port else None)


@pytest.mark.parametrize("params", [example["params"] for example in MANIFEST["actions"]["convertTemperature"]["examples"]])
def test_every_convert_temperature_example_runs(client, params):
    result = run(client, "convertTemperature", params)
    assert result.status == "success", result
    assert result.result["returned"]["success"] is True


@pytest.mark.parametrize("params", [example["params"] for example in MANIFEST["actions"]["getWeather"]["examples"]])
def test_every_get_weather_example_runs(client, openweather, params):
    result = run(client, "getWeather", params, secrets={"OPENWEATHER_API_KEY": API_KEY}, port=openweather)
    assert result.status == "success", result
    assert result.result["returned"]["success"] is True and len(result.result["responses"]) == 1


def test_convert_temperature_answers_and_declines_below_absolute_zero(client):
    answered = run(client, "convertTemperature", {"value": 20, "from": "C", "to": "F"})
    assert answered.result == {
        "returned": {"success": True, "text": "20 °C is 68 °F", "values": {"value": 68, "unit": "F"}},
        "responses": [{"text": "20 °C is 68 °F", "actions": ["CONVERT_TEMPERATURE"]}],
    }
    assert run(client, "convertTemperature", {"value": -459.67, "from": "F", "to": "K"}).result["returned"]["values"] == {
        "value": 0, "unit": "K"}
    declined = run(client, "convertTemperature", {"value": -300, "from": "C", "to": "K"})
    assert declined.error_type == "VALIDATION_ERROR", declined
    assert "CONVERT_TEMPERATURE declined" in declined.message


def test_get_weather_asks_openweather_through_the_broker_with_the_granted_key(client, openweather):
    OpenWeather.seen.clear()
    result = run(client, "getWeather", {"city": "Oslo"}, secrets={"OPENWEATHER_API_KEY": API_KEY}, port=openweather)
    assert result.status == "success", result
    weather = result.result["returned"]["values"]
    assert weather == {"found": True, "city": "Oslo", "country": "NO", "description": "light rain", "temperature": 4.2,
                       "feelsLike": 1.3, "humidity": 87, "windSpeed": 3.6, "units": "metric"}
    assert result.result["responses"] == [{"text": "Oslo: 4.2°C (feels like 1.3°C), light rain, humidity 87%",
                                           "actions": ["GET_WEATHER"]}]
    assert result.logs == ["[info] weather for Oslo in metric units"]
    assert OpenWeather.seen == [{"path": "/data/2.5/weather", "host": f"api.openweathermap.org:{openweather}",
                                 "query": {"q": ["Oslo"], "units": ["metric"], "appid": [API_KEY]}}]

    unknown = run(client, "getWeather", {"city": "Atlantis"}, secrets={"OPENWEATHER_API_KEY": API_KEY}, port=openweather)
    assert unknown.status == "success" and unknown.result["returned"]["values"] == {"found": False}, unknown


def test_get_weather_declines_without_a_key_and_fails_on_a_wrong_one(client, openweather):
    declined = run(client, "getWeather", {"city": "Oslo"}, port=openweather)
    assert declined.error_type == "VALIDATION_ERROR" and "GET_WEATHER declined" in declined.message, declined
    wrong = run(client, "getWeather", {"city": "Oslo"}, secrets={"OPENWEATHER_API_KEY": "not-the-key"}, port=openweather)
    assert wrong.error_type == "PLUGIN_ERROR" and "OpenWeather answered 401" in wrong.message, wrong


def test_get_weather_reaches_no_host_but_the_allowed_one(client, openweather):
    elsewhere = run(client, "getWeather", {"city": "Oslo"}, secrets={"OPENWEATHER_API_KEY": API_KEY}, port=openweather,
                    api_url=f"http://weather.example:{openweather}")
    assert elsewhere.error_type == "SANDBOX_VIOLATION" and "allowlist" in elsewhere.message, elsewhere
