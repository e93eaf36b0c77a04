"""Checks of a JavaScript plugin's files at upload, without running them.

The host never runs plugin code. Syntax is checked by Node's own parser in a
separate, short-lived `node` process given only the sources on its stdin:
`vm.compileFunction` compiles each file as the sandbox's CommonJS loader
will wrap it, and compiling executes nothing. Whether a handler is exported
can only be known by running the module, so the upload checks what it can
statically (the entrypoint names each handler as an export, or for an
elizaOS plugin, each action's name is in its sources); a handler that turns
out not to be exported ends its runs as PLUGIN_ERROR.
"""

import json
import re
import shutil
import subprocess

SOURCE_SUFFIXES = (".js", ".cjs")
NODE_MODULES = "node_modules/"
# What a check may take: the sources are at most a few MiB, so this only
# bounds a pathological parse.
CHECK_TIMEOUT_SECONDS = 20

SYNTAX_CHECK = r"""
const vm = require('node:vm');
const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  const errors = {};
  for (const [path, source] of Object.entries(JSON.parse(Buffer.concat(chunks).toString('utf8')))) {
    try {
      vm.compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname'], { filename: path });
    } catch (error) {
      const line = String(error.stack).split('\n')[0].match(/:(\d+)$/);
      errors[path] = (line ? `line ${line[1]}: ` : '') + `${error.name}: ${error.message}`;
    }
  }
  process.stdout.write(JSON.stringify(errors));
});
"""


def is_source(path):
    return path.endswith(SOURCE_SUFFIXES)


def code_errors(manifest, files):
    """What is wrong with a JavaScript plugin's files: syntax, handlers the
    entrypoint does not export, dependencies it does not bundle."""
    errors = syntax_errors({path: text for path, text in files.items() if is_source(path)})
    errors += dependency_errors(files)
    entrypoint = manifest["entrypoint"]
    if entrypoint not in files:
        listing = ", ".join(sorted(files))
        errors.append({"field": "entrypoint", "message": f"{entrypoint} is not among the plugin's files ({listing})"})
        return errors
    if manifest.get("adapter") == "eliza":
        return errors + eliza_errors(manifest, files)
    for name, action in manifest["actions"].items():
        if not exports_name(files[entrypoint], action["handler"]):
            errors.append({
                "field": f"actions.{name}.handler",
                "message": f"{action['handler']!r} is not exported by {entrypoint} "
                f"(exports.{action['handler']} = ..., or module.exports = {{ {action['handler']}, ... }})",
            })
    return errors


def syntax_errors(sources):
    if not sources:
        return []
    node = shutil.which("node")
    if node is None:
        return [{"field": "runtime", "message": "JavaScript plugins cannot be checked: this service has no Node.js"}]
    try:
        checked = subprocess.run(
            [node, "--max-old-space-size=256", "-e", SYNTAX_CHECK],
            input=json.dumps(sources).encode(), capture_output=True, timeout=CHECK_TIMEOUT_SECONDS, env={}, cwd="/",
        )
        found = json.loads(checked.stdout)
    except subprocess.TimeoutExpired:
        return [{"field": "runtime", "message": f"the syntax check took over {CHECK_TIMEOUT_SECONDS} s"}]
    except ValueError:
        return [{"field": "runtime", "message": "the syntax check failed: " + checked.stderr.decode(errors="replace")[-500:]}]
    return [{"field": path, "message": message} for path, message in sorted(found.items())]


def exports_name(source, name):
    """Whether `source` names `name` as an export: `exports.name`,
    `exports['name']`, or the name after a `module.exports =` (a static
    look, which a plugin can fool only to its own cost)."""
    word = re.escape(name)
    if re.search(rf"\bexports\s*(\.\s*{word}\b|\[\s*['\"`]{word}['\"`]\s*\])", source):
        return True
    assignment = re.search(r"\bmodule\.exports\s*=", source)
    return bool(assignment and re.search(rf"\b{word}\b", source[assignment.end():]))


def eliza_errors(manifest, files):
    """An elizaOS plugin's actions, as far as reading can tell: the entrypoint
    names `actions`, and each handler (an elizaOS action's `name`) is a
    string in the plugin's own sources. Which action a name belongs to shows
    only when the module runs: an action the plugin lacks ends its runs as
    PLUGIN_ERROR."""
    entrypoint = manifest["entrypoint"]
    errors = []
    if not re.search(r"\bactions\b", files[entrypoint]):
        errors.append({"field": "entrypoint",
                       "message": f"{entrypoint} exports no elizaOS plugin: it never names `actions` "
                       "(module.exports = { name, actions: [...] }, or exports.default = plugin)"})
    own_sources = [text for path, text in files.items() if is_source(path) and not path.startswith(NODE_MODULES)]
    for name, action in manifest["actions"].items():
        literal = re.compile(rf"(['\"`]){re.escape(action['handler'])}\1")
        if not any(literal.search(source) for source in own_sources):
            errors.append({
                "field": f"actions.{name}.handler",
                "message": f"no elizaOS action is named {action['handler']!r} in the plugin's sources "
                f"(an action {{ name: '{action['handler']}', validate, handler }})",
            })
    return errors


def dependency_errors(files):
    """package.json's dependencies must come with the upload (node_modules/):
    nothing is installed for a plugin."""
    if "package.json" not in files:
        return []
    try:
        package = json.loads(files["package.json"])
    except ValueError as error:
        return [{"field": "package.json", "message": f"not valid JSON: {error}"}]
    dependencies = package.get("dependencies") if isinstance(package, dict) else None
    if not isinstance(dependencies, dict):
        return []
    missing = sorted(name for name in dependencies if not any(path.startswith(f"{NODE_MODULES}{name}/") for path in files))
    if not missing:
        return []
    return [{
        "field": "package.json",
        "message": f"dependencies {', '.join(missing)} are not in the upload: nothing is installed for a plugin, so "
        f"bundle them (a bundler's single file, or their {NODE_MODULES} folders, pure JavaScript only)",
    }]
