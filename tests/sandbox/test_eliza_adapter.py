"""The elizaOS adapter of the Node runtime (`adapter="eliza"`) through the
real sandbox: how it finds the plugin object and the action, what the
runtime it builds offers (settings, logger, identity) and refuses (memory,
models, services: NotSupportedByEngine), and how validate, the handler's
result and its callbacks become the run's outcome. (Its fetch, through the
egress broker: tests/plugins/test_example_eliza_weather.py.)

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

import pytest

pytestmark = pytest.mark.slow

PLUGIN = """
const greet = {
  name: 'GREET',
  similes: ['HELLO'],
  description: 'Greets someone.',
  validate: async (runtime, message) => typeof message.content.who === 'string' && message.content.who !== 'nobody',
  handler: async (runtime, message, state, options, callback) => {
    runtime.logger.info('greeting', message.content.who);
    runtime.logger.warn({ level: 'warn' });
    await callback({ text: `Hello, ${message.content.who}!` });
    await callback({ text: 'Twice.' });
    return {
      success: true,
      text: 'greeted',
      values: {
        greeting: runtime.getSetting('GREETING'),
        token: runtime.getSetting('API_TOKEN') === 'tok-123',
        missing: runtime.getSetting('NOT_THERE'),
        agentId: runtime.agentId,
        character: runtime.character.name,
        actions: runtime.actions.map((action) => action.name),
        content: message.content,
        options,
        state,
        frozen: Object.isFrozen(runtime),
      },
    };
  },
};
const quiet = { name: 'QUIET', validate: async () => true, handler: async () => undefined };
const failing = { name: 'FAILING', validate: async () => true, handler: async () => ({ success: false, error: 'upstream is down' }) };
const remember = { name: 'REMEMBER', validate: async () => true, handler: async (runtime, message) => runtime.createMemory(message) };
const think = { name: 'THINK', validate: async () => true, handler: async (runtime) => runtime.useModel('TEXT_SMALL', {}) };
const strict = { name: 'STRICT', validate: async () => { throw new Error('validate broke'); }, handler: async () => 1 };
"""


def eliza(run_js, export, action, params=None, **kwargs):
    return run_js(PLUGIN + export, params=params or {}, handler=action, adapter="eliza", **kwargs)


EXPORT = "module.exports = { name: 'demo', actions: [greet, quiet, failing, remember, think, strict] };\n"


def test_an_action_runs_with_the_runtime_the_adapter_builds(sandbox, run_js):
    result = eliza(run_js, EXPORT, "GREET", {"who": "Ada"}, secrets={"API_TOKEN": "tok-123", "GREETING": "from secrets"},
                   settings={"GREETING": "from settings", "OTHER": "x"})
    assert result.status == "success", result
    values = result.result["returned"]["values"]
    # A granted secret wins over a setting of the same name; an unknown name is null.
    assert values["greeting"] == "from secrets" and values["token"] is True and values["missing"] is None
    assert values["agentId"] == "00000000-0000-0000-0000-000000000000" and values["character"] == "plugin-engine"
    assert values["actions"] == ["GREET", "QUIET", "FAILING", "REMEMBER", "THINK", "STRICT"]
    assert values["content"] == {"text": "", "who": "Ada", "source": "plugin-engine"}
    assert values["options"] == values["content"]
    assert values["state"] == {"values": {}, "data": {}, "text": ""} and values["frozen"] is True
    assert result.result["responses"] == [{"text": "Hello, Ada!"}, {"text": "Twice."}]
    assert result.logs == ["[info] greeting Ada", "[warn] { level: 'warn' }"]

    settings_only = eliza(run_js, EXPORT, "GREET", {"who": "Ada"}, settings={"GREETING": "from settings"})
    assert settings_only.result["returned"]["values"]["greeting"] == "from settings"


@pytest.mark.parametrize("export", [
    "module.exports = { default: { name: 'demo', actions: [quiet] } };\n",
    "exports.demoPlugin = { name: 'demo', actions: [quiet] };\n",
    "exports.default = { name: 'demo', actions: [quiet] };\n",
])
def test_the_plugin_object_is_found_as_a_default_or_named_export(sandbox, run_js, export):
    result = eliza(run_js, export, "QUIET")
    assert result.status == "success" and result.result == {"returned": None, "responses": []}, result


def test_validate_answering_false_is_a_validation_error(sandbox, run_js):
    declined = eliza(run_js, EXPORT, "GREET", {"who": "nobody"})
    assert declined.error_type == "VALIDATION_ERROR", declined
    assert declined.message == "the action GREET declined to run (its validate answered false)"
    broken = eliza(run_js, EXPORT, "STRICT")
    assert broken.error_type == "PLUGIN_ERROR" and "validate broke" in broken.message, broken


def test_a_failed_action_result_is_a_plugin_error(sandbox, run_js):
    failed = eliza(run_js, EXPORT, "FAILING")
    assert failed.error_type == "PLUGIN_ERROR" and failed.message == "Error: the action FAILING failed: upstream is down"


@pytest.mark.parametrize("action,call", [("REMEMBER", "createMemory"), ("THINK", "useModel")])
def test_what_the_engine_does_not_offer_throws_naming_the_call(sandbox, run_js, action, call):
    result = eliza(run_js, EXPORT, action)
    assert result.error_type == "PLUGIN_ERROR", result
    assert result.message.startswith(f"NotSupportedByEngine: runtime.{call} is not supported by this engine"), result


def test_a_missing_action_or_plugin_object_is_a_plugin_error(sandbox, run_js):
    missing = eliza(run_js, EXPORT, "DANCE")
    assert missing.error_type == "PLUGIN_ERROR" and "no action named 'DANCE'" in missing.message, missing
    no_plugin = eliza(run_js, "exports.greet = greet;\n", "GREET")
    assert no_plugin.error_type == "PLUGIN_ERROR" and "exports no elizaOS plugin" in no_plugin.message, no_plugin
