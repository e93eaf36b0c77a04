"""Validation of a plugin's manifest (plugin.json) and of its code, without running it.

The host never imports plugin code: it reads the manifest, compiles the
sources (compiling executes nothing) and inspects the entrypoint's syntax
tree to check that every declared handler exists. The code itself only ever
runs inside the sandbox. JavaScript plugins (`"runtime": "node"`) are
checked by plugins.javascript.
"""

import ast
import copy
import importlib.util
import re
import sys
from dataclasses import dataclass

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError, ValidationError
from referencing.exceptions import Unresolvable

from egress import normalize_domain_entry

from . import javascript
from .params_schema import STRUCTURE_FORMATS, UncheckableSchema, params_validator

MANIFEST_NAME = "plugin.json"
# The API's own ceiling for a run (docs/api.md).
MAX_TIMEOUT_MS = 300_000
# What a plugin's code runs on, and the suffix of its entrypoint there.
RUNTIME_SUFFIXES = {"python": ".py", "node": ".js"}
# How a node plugin's actions are called besides its own exports: "eliza"
# runs the actions of an elizaOS plugin (docs/plugins.md).
ADAPTERS = ("eliza",)
# A Node process needs some 40 MiB before any plugin code runs.
NODE_MIN_MEMORY_MB = 64


class ManifestError(Exception):
    """A plugin upload was refused; `errors` lists {"field", "message"} pairs."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__(self.errors)

    @classmethod
    def single(cls, field, message):
        return cls([{"field": field, "message": message}])

    def __str__(self):
        return "; ".join(f"{error['field']}: {error['message']}" for error in self.errors)


def _pattern(regex, description):
    # The description doubles as the error message, which beats echoing a regex.
    return {"type": "string", "pattern": regex, "description": description}


MANIFEST_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "plugin.json",
    "type": "object",
    "required": ["name", "version", "entrypoint", "actions"],
    "additionalProperties": False,
    "properties": {
        "name": _pattern(
            r"^[a-z0-9][a-z0-9-]{0,62}$",
            "a plugin id: 1-63 lowercase letters, digits and hyphens, not starting with a hyphen",
        ),
        "version": _pattern(
            r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
            r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$",
            "a semantic version such as 1.2.0 or 2.0.0-beta.1",
        )
        | {"maxLength": 64},
        "runtime": {"enum": list(RUNTIME_SUFFIXES), "default": "python"},
        "adapter": {"enum": list(ADAPTERS)},
        "settings": {
            "type": "object",
            "maxProperties": 64,
            "propertyNames": _pattern(r"^[A-Z][A-Z0-9_]{0,63}$", "a setting name in UPPER_SNAKE_CASE, such as API_URL"),
            "additionalProperties": {"type": "string", "maxLength": 2000},
        },
        "entrypoint": _pattern(
            r"^([A-Za-z0-9_][A-Za-z0-9_-]*/)*[A-Za-z0-9_][A-Za-z0-9_-]*\.(py|js)$",
            "a relative path to a .py file inside the plugin (a .js file for runtime node), such as plugin.py or src/main.js",
        ),
        "description": {"type": "string", "maxLength": 10_000, "default": ""},
        "actions": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": _pattern(
                r"^[A-Za-z][A-Za-z0-9_]{0,63}$",
                "an action name: a letter then up to 63 letters, digits or underscores (e.g. getForecast)",
            ),
            "additionalProperties": {"$ref": "#/$defs/action"},
        },
        "network": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "allowedDomains": {
                    "type": "array",
                    "items": {"type": "string", "maxLength": 255},
                    "uniqueItems": True,
                    "default": [],
                },
            },
            "default": {"allowedDomains": []},
        },
        "secrets": {
            "type": "array",
            "items": _pattern(r"^[A-Z][A-Z0-9_]{0,63}$", "a secret name in UPPER_SNAKE_CASE, such as API_KEY"),
            "uniqueItems": True,
            "default": [],
        },
        "limits": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "memoryMb": {"type": "integer", "minimum": 16, "maximum": 4096},
                "scratchMb": {"type": "integer", "minimum": 1, "maximum": 4096},
            },
            "default": {},
        },
    },
    "$defs": {
        "action": {
            "type": "object",
            "required": ["handler"],
            "additionalProperties": False,
            "properties": {
                "handler": _pattern(
                    r"^[A-Za-z_][A-Za-z0-9_]*$", "a function name (letters, digits and underscores)"
                ),
                "description": {"type": "string", "maxLength": 10_000, "default": ""},
                "params": {"type": "object", "default": {"type": "object"}},
                "cacheable": {"type": "boolean", "default": False},
                "idempotent": {"type": "boolean", "default": True},
                "default": {"default": None},
                "timeoutMs": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS},
                "examples": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["params"],
                        "properties": {"params": {"type": "object"}, "description": {"type": "string"}},
                    },
                    "default": [],
                },
            },
        },
    },
}


def _whole_string_pattern(validator, pattern, instance, schema):
    # Python's `$` also matches before a trailing newline, which would let
    # "weather\n" through as a plugin id; the manifest's patterns must match
    # the whole string.
    if validator.is_type(instance, "string") and not re.fullmatch(pattern, instance):
        yield ValidationError(f"{instance!r} is not {schema.get('description', f'matching {pattern!r}')}")


# jsonschema reports a missing or unexpected key against the object holding
# it; the manifest's errors name the key itself, field by field.
def _required_key(validator, required, instance, schema):
    if validator.is_type(instance, "object"):
        for key in required:
            if key not in instance:
                yield ValidationError("is required", path=[key])


def _known_keys_only(validator, additional, instance, schema):
    if additional is not False:
        yield from Draft202012Validator.VALIDATORS["additionalProperties"](validator, additional, instance, schema)
    elif validator.is_type(instance, "object"):
        known = schema.get("properties", {})
        for key in instance:
            if key not in known:
                yield ValidationError(f"is not a known field (known: {', '.join(known)})", path=[key])


_ManifestValidator = validators.extend(
    Draft202012Validator,
    {"pattern": _whole_string_pattern, "required": _required_key, "additionalProperties": _known_keys_only},
)
_manifest_validator = _ManifestValidator(MANIFEST_SCHEMA)


def field_name(*parts):
    """Dotted field path with list indexes in brackets: actions.query.examples[0].params."""
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "manifest"


def validate_manifest(manifest, max_scratch_mb=None):
    """Check the manifest on its own; return a copy with every default filled in.

    `max_scratch_mb` is the operator's ceiling on `limits.scratchMb` (None: the
    schema's own). Raises ManifestError listing every problem found.
    """
    _check_structure(manifest)
    _raise_if_any(_content_errors(manifest, max_scratch_mb))
    return _with_defaults(manifest)


@dataclass(frozen=True)
class Importable:
    """The top-level modules a run finds besides the standard library and the
    plugin's own: those of its vendored wheels and of the operator's shared
    set (None: this service has no shared set)."""

    vendored: frozenset = frozenset()
    shared: frozenset | None = None


def validate_plugin(manifest, files, importable=Importable(), max_scratch_mb=None):
    """Check the manifest and the code it describes; return the manifest with defaults.

    `files` maps relative paths to text (wheels, as bytes, are checked by
    plugins.wheels). Every `.py` file must compile and import only what the
    sandbox provides (the standard library, the plugin's own modules and
    `importable`), and every handler must be a top-level function of the
    entrypoint. A plugin of one module may leave out `entrypoint`: it is
    that module. `max_scratch_mb` as for validate_manifest.
    """
    manifest = _with_sole_module_as_entrypoint(manifest, files)
    _check_structure(manifest)
    _raise_if_any(_content_errors(manifest, max_scratch_mb) + _code_errors(manifest, files, importable))
    return _with_defaults(manifest)


def runtime_of(manifest):
    return manifest.get("runtime") or "python"


def _with_sole_module_as_entrypoint(manifest, files):
    if not isinstance(manifest, dict) or "entrypoint" in manifest:
        return manifest
    suffix = RUNTIME_SUFFIXES.get(runtime_of(manifest), ".py")
    modules = [path for path in files if path.endswith(suffix)]
    return {**manifest, "entrypoint": modules[0]} if len(modules) == 1 else manifest


def _raise_if_any(errors):
    if errors:
        raise ManifestError(errors)


def _check_structure(manifest):
    # Nothing else can be checked in a manifest of the wrong shape.
    errors = sorted(_manifest_validator.iter_errors(manifest), key=lambda error: [str(part) for part in error.path])
    _raise_if_any([{"field": field_name(*error.path), "message": error.message} for error in errors])


def _content_errors(manifest, max_scratch_mb):
    """What the schema cannot say: params schemas, examples, domains and the
    operator's ceiling on the scratch space."""
    errors = []
    runtime = runtime_of(manifest)
    if not manifest["entrypoint"].endswith(RUNTIME_SUFFIXES[runtime]):
        suffix = RUNTIME_SUFFIXES[runtime]
        errors.append({"field": "entrypoint", "message": f"runtime {runtime!r} runs a {suffix} entrypoint, not {manifest['entrypoint']}"})
    if "adapter" in manifest and runtime != "node":
        errors.append({"field": "adapter",
                       "message": f"the {manifest['adapter']} adapter runs JavaScript: it needs \"runtime\": \"node\""})
    if "settings" in manifest and "adapter" not in manifest:
        errors.append({"field": "settings",
                       "message": "settings are the defaults of an elizaOS plugin's runtime.getSetting: "
                       "they need \"adapter\": \"eliza\" (other plugins read ctx.secrets)"})
    memory_mb = manifest.get("limits", {}).get("memoryMb")
    if runtime == "node" and memory_mb is not None and memory_mb < NODE_MIN_MEMORY_MB:
        errors.append({"field": "limits.memoryMb",
                       "message": f"a JavaScript plugin needs at least {NODE_MIN_MEMORY_MB} MiB (Node.js takes some 40 itself)"})
    scratch_mb = manifest.get("limits", {}).get("scratchMb")
    if max_scratch_mb is not None and scratch_mb is not None and scratch_mb > max_scratch_mb:
        errors.append({"field": "limits.scratchMb",
                       "message": f"{scratch_mb} MiB is over this service's ceiling of {max_scratch_mb} MiB"})
    for name, action in manifest["actions"].items():
        errors += _action_schema_errors(name, action)
    for index, domain in enumerate(manifest.get("network", {}).get("allowedDomains", [])):
        try:
            normalize_domain_entry(domain)
        except ValueError as exc:
            errors.append({"field": field_name("network", "allowedDomains", index), "message": str(exc)})
    return errors


def _action_schema_errors(name, action):
    """Errors in an action's params schema, or in its examples against that schema."""
    if "params" not in action:
        return []
    schema_field = ("actions", name, "params")
    try:
        Draft202012Validator.check_schema(action["params"], format_checker=STRUCTURE_FORMATS)
    except SchemaError as exc:
        return [{"field": field_name(*schema_field, *exc.path), "message": f"not a valid JSON Schema: {exc.message}"}]
    try:
        validator = params_validator(action["params"])
    except UncheckableSchema as exc:
        return [{"field": field_name(*schema_field, *path), "message": message} for path, message in exc.problems]

    errors = []
    for index, example in enumerate(action.get("examples", [])):
        example_field = ("actions", name, "examples", index, "params")
        try:
            for error in validator.iter_errors(example["params"]):
                errors.append({"field": field_name(*example_field, *error.path), "message": error.message})
        except Unresolvable as exc:
            # Remote references are never fetched, so a schema must be self-contained.
            return [{"field": field_name(*schema_field), "message": f"unresolvable $ref: {exc}"}]
    return errors


def _code_errors(manifest, files, importable):
    """Sources that do not compile, a missing entrypoint, handlers it does not define."""
    if runtime_of(manifest) == "node":
        return javascript.code_errors(manifest, files)
    errors = []
    trees = {}
    for path, source in sorted(files.items()):
        if not path.endswith(".py"):
            continue
        try:
            trees[path] = _compiled_tree(path, source)
        except SyntaxError as exc:
            location = f"line {exc.lineno}: " if exc.lineno else ""
            errors.append({"field": path, "message": f"{location}{exc.msg}"})
        except (ValueError, RecursionError, MemoryError) as exc:
            errors.append({"field": path, "message": f"does not compile: {exc or type(exc).__name__}"})

    errors += _import_errors(trees, files, importable)
    entrypoint = manifest["entrypoint"]
    if entrypoint not in files:
        listing = ", ".join(sorted(files))
        errors.append({"field": "entrypoint", "message": f"{entrypoint} is not among the plugin's files ({listing})"})
    elif entrypoint in trees:
        defined = _top_level_functions(trees[entrypoint])
        for name, action in manifest["actions"].items():
            if action["handler"] not in defined:
                message = f"{action['handler']!r} is not a top-level function (def or async def) in {entrypoint}"
                errors.append({"field": field_name("actions", name, "handler"), "message": message})
    return errors


def _compiled_tree(path, source):
    """Parse and compile the source (compiling catches errors parsing alone misses)."""
    tree = ast.parse(source, filename=path)
    compile(tree, path, "exec")
    return tree


# A failed import the code itself handles (an optional speed-up, say) is
# allowed: these are the handlers that catch it.
_IMPORT_FAILURE_HANDLERS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _import_errors(trees, files, importable):
    """Imports the sandbox cannot satisfy: it holds the standard library, the
    plugin's own modules, its vendored wheels and the operator's shared set;
    nothing else (not the host's site-packages)."""
    own = {path.split("/")[0].removesuffix(".py") for path in files if path.endswith(".py")}
    own |= importable.vendored | (importable.shared or frozenset())
    if importable.shared is None:
        where = "nor this service's shared packages (it has none: its operator has not set SANDBOX_SHARED_PACKAGES)"
    else:
        where = "nor the operator's shared packages"
    errors = []
    for path, tree in trees.items():
        refused = {}
        for node, guarded in _imports(tree):
            if guarded:
                continue
            if isinstance(node, ast.ImportFrom):
                names = [node.module] if node.level == 0 and node.module else []
            else:
                names = [alias.name for alias in node.names]
            for name in names:
                top = name.split(".")[0]
                if top not in own and not _in_standard_library(top):
                    refused.setdefault(top, node.lineno)
        for name, line in sorted(refused.items(), key=lambda item: item[1]):
            errors.append({
                "field": path,
                "message": f"line {line}: imports {name!r}, which neither the Python standard library, "
                f"the plugin's own modules, its vendored wheels (vendor/*.whl) {where} provide",
            })
    return errors


def _imports(tree, guarded=False):
    """(import node, whether a surrounding try handles its failure) for every import."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, guarded
        elif isinstance(node, (ast.Try, ast.TryStar)):
            handles = any(_catches_import_failure(handler) for handler in node.handlers)
            for child in node.body:
                yield from _imports_in(child, guarded or handles)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                yield from _imports_in(child, guarded)
        else:
            yield from _imports(node, guarded)


def _imports_in(node, guarded):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node, guarded
    else:
        yield from _imports(node, guarded)


def _catches_import_failure(handler):
    if handler.type is None:
        return True
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(name, ast.Name) and name.id in _IMPORT_FAILURE_HANDLERS for name in caught)


def _in_standard_library(name):
    # find_spec of a top-level name locates it without running it; a standard
    # module this interpreter lacks (tkinter without Tk) is not there either.
    return name == "__future__" or (name in sys.stdlib_module_names and importlib.util.find_spec(name) is not None)


def _top_level_functions(tree):
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _with_defaults(manifest):
    complete = copy.deepcopy(manifest)
    _fill_defaults(complete, MANIFEST_SCHEMA["properties"])
    for action in complete["actions"].values():
        _fill_defaults(action, MANIFEST_SCHEMA["$defs"]["action"]["properties"])
    return complete


def _fill_defaults(instance, properties):
    for key, subschema in properties.items():
        if key not in instance and "default" in subschema:
            instance[key] = copy.deepcopy(subschema["default"])
