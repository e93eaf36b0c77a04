"""Validating a call's params against its action's params schema, in time
linear in the params.

Params schemas are the plugin author's, and jsonschema runs `pattern` and
`patternProperties` with Python's `re`, which backtracks: ^(a|aa)+$ over a
60-character param takes hours, in the web process, holding the GIL. Here
those regexes run on RE2, which matches in linear time (and so has no
backreferences or lookaround). jsonschema goes back to `re`, out of reach
of a keyword of our own, in two places, so a params schema is refused
(at upload, and at /execute for versions uploaded before this check) when:

- RE2 cannot compile one of its regexes;
- it has both unevaluatedProperties and patternProperties: jsonschema works
  out which properties patternProperties evaluated with `re`;
- a subschema names its dialect (`$schema`): jsonschema validates it with
  its own class for that dialect. The root's `$schema` is set aside for the
  same reason (a `$ref` to "#" comes back to it): params schemas are
  JSON Schema 2020-12.

A `$ref` is resolved within the schema only: jsonschema's default registry
would fetch a remote one, from the web process.
"""

import functools

import re2
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry

_OPTIONS = re2.Options()
# A pattern RE2 refuses is the uploader's mistake, reported to them; not a log line.
_OPTIONS.log_errors = False
_STANDARD = Draft202012Validator.VALIDATORS
# Remote references are never fetched: the schema must be self-contained.
_NOTHING_REMOTE = Registry()
# For the structure of a params schema (check_schema): its regexes are judged
# by schema_problems, on the engine that runs them, not by `re`.
STRUCTURE_FORMATS = FormatChecker([name for name in FormatChecker.checkers if name != "regex"])


class UncheckableSchema(ValueError):
    """A params schema this service will not validate params against; `problems` lists (path, message)."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(message for _, message in self.problems))


# JSON allows lone surrogates ("\ud800"), in patterns and params alike,
# which strict UTF-8, RE2's encoding, cannot hold: both go in as the bytes
# Python gives them.
def _utf8(text):
    return text.encode("utf-8", "surrogatepass")


@functools.lru_cache(maxsize=128)
def _regex(pattern):
    return re2.compile(_utf8(pattern), _OPTIONS)


def _found(pattern, text):
    return _regex(pattern).search(_utf8(text)) is not None


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _found(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator, patterns, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _found(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator, additional, instance, schema):
    patterns = schema.get("patternProperties")
    if patterns and validator.is_type(instance, "object"):
        # jsonschema would set aside the keys patternProperties covers by
        # matching them with `re`: they are set aside here, with RE2.
        instance = {key: value for key, value in instance.items() if not any(_found(p, key) for p in patterns)}
        schema = {keyword: value for keyword, value in schema.items() if keyword != "patternProperties"}
    yield from _STANDARD["additionalProperties"](validator, additional, instance, schema)


_ParamsValidator = validators.extend(
    Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties, "additionalProperties": _additional_properties},
)


def params_validator(schema):
    """The validator of params against `schema`; UncheckableSchema if schema_problems finds any."""
    problems = schema_problems(schema)
    if problems:
        raise UncheckableSchema(problems)
    if isinstance(schema, dict) and "$schema" in schema:
        schema = {keyword: value for keyword, value in schema.items() if keyword != "$schema"}
    return _ParamsValidator(schema, registry=_NOTHING_REMOTE)


def schema_problems(schema):
    """(path, message) for each reason params cannot be safely validated against
    `schema` (see the module's docstring); a path is a tuple of keys and indexes.

    Every part of the schema is looked at, values of const, enum or default
    too, since a `$ref` can point anywhere in it.
    """
    problems = []
    first_seen = {}
    for path, key, value in _entries(schema):
        where = (*path, key)
        if key == "pattern" and isinstance(value, str):
            problems += _regex_problems(where, value)
        elif key == "patternProperties" and isinstance(value, dict):
            for pattern in value:
                problems += _regex_problems((*where, pattern), pattern)
        elif key == "$schema" and path:
            problems.append((where, "a subschema may not name a dialect: params schemas are JSON Schema 2020-12"))
        first_seen.setdefault(key, where)
    if "unevaluatedProperties" in first_seen and "patternProperties" in first_seen:
        problems.append((
            first_seen["unevaluatedProperties"],
            "cannot be used together with patternProperties in a params schema; "
            "use additionalProperties beside patternProperties instead",
        ))
    return problems


def _entries(node, path=()):
    """(path of the object, key, value) for every key of every object in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from _entries(value, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _entries(item, (*path, index))


def _regex_problems(where, pattern):
    try:
        _regex(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return [(where, f"{pattern!r} is not a regular expression this service runs ({reason}): patterns run on RE2, "
                        "in linear time, so they have no backreferences or lookaround "
                        "(syntax: https://github.com/google/re2/wiki/Syntax)")]
    return []
