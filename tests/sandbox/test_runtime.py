"""What a plugin's own code sees in the child: its modules, by their names."""

import dataclasses
import json

from tests.sandbox.helpers import make_request


def test_a_plugin_module_named_like_a_sandbox_module_is_the_plugins_own(sandbox):
    # The child runs the sandbox's own `child`, `runtime` and `protocol`
    # modules; a plugin's helpers of the same names must still be its own.
    source = (
        "import child, protocol, runtime\n"
        "from child import nested\n"
        "def attack(params, ctx):\n"
        "    return [child.WHO, nested.WHO, protocol.WHO, runtime.WHO]\n"
    )
    request = dataclasses.replace(
        make_request(source),
        modules={
            "plugin.py": source,
            "child/__init__.py": "WHO = 'plugin child'\n",
            "child/nested.py": "WHO = 'plugin child.nested'\n",
            "protocol.py": "WHO = 'plugin protocol'\n",
            "runtime.py": "WHO = 'plugin runtime'\n",
        },
    )
    result = sandbox.a.run(request)
    assert result.status == "success", result
    assert json.loads(result.result_json) == ["plugin child", "plugin child.nested", "plugin protocol", "plugin runtime"]
