"""The JavaScript example plugin (examples/text-js) through the real
sandbox: each manifest example runs, and the handlers answer as documented.
(The host never runs plugin code, and cannot run JavaScript at all: these
runs go through a fork-server, as the service's do.)

No Django here (`-p no:django` runs it)."""

import hashlib
import json
import tempfile
import uuid

import pytest

from plugins.archive import load_plugin_source
from sandbox import ALL_LAYERS, ForkServerClient, RunRequest
from tests.factories import EXAMPLES

pytestmark = pytest.mark.slow

MANIFEST, FILES = load_plugin_source(EXAMPLES / "text-js")


@pytest.fixture(scope="module")
def client():
    client = ForkServerClient(lock_dir=tempfile.mkdtemp(prefix="text-js-locks-"), uid_base=262000,
                              required_layers=list(ALL_LAYERS))
    yield client
    client.close()


def run(client, action, params):
    request = RunRequest(
        execution_id=str(uuid.uuid4()),
        modules={path: text for path, text in FILES.items() if path.endswith((".js", ".json"))},
        entrypoint=MANIFEST["entrypoint"], handler=MANIFEST["actions"][action]["handler"], params=params,
        timeout_ms=5000, memory_bytes=MANIFEST["limits"]["memoryMb"] << 20, runtime="node",
    )
    return client.run(request)


@pytest.mark.parametrize("action,params", [(action, example["params"]) for action, spec in MANIFEST["actions"].items()
                                           for example in spec["examples"]])
def test_every_manifest_example_runs(client, action, params):
    result = run(client, action, params)
    assert result.status == "success", result
    json.dumps(result.result, allow_nan=False)


def test_the_handlers_answer_as_documented(client):
    assert run(client, "slugify", {"text": "Hello, Wörld!"}).result == {"slug": "hello-world"}
    assert run(client, "slugify", {"text": "Crème brûlée recipes", "separator": "_"}).result == {"slug": "creme_brulee_recipes"}
    counted = run(client, "wordCount", {"text": "The dog saw the other dog. It's the dog's day!", "top": 2}).result
    assert counted["words"] == 10 and counted["topWords"] == [{"word": "the", "count": 3}, {"word": "dog", "count": 2}]
    assert run(client, "digest", {"text": "abc"}).result == {"algorithm": "sha256", "hex": hashlib.sha256(b"abc").hexdigest()}
    rejected = run(client, "wordCount", {"text": "  ...  "})
    assert rejected.error_type == "VALIDATION_ERROR" and rejected.details == {"field": "text"}
