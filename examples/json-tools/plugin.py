"""Query, reshape, compare and merge JSON documents.

All actions speak one path syntax, so a path reported by `diff` or produced by
`flatten` can be fed straight back into `query` or `unflatten`:

    items[0].name      key "items", index 0, key "name"
    items[*].name      "name" of every element of "items"
    *.id               "id" of every child of the root
    ["a.b"][-1]        a key that needs quoting (JSON string syntax), last item

Bare keys are anything without dots, brackets, quotes or whitespace; a bare
`*` is the wildcard, so a key that is literally "*" must be written ["*"].
Indexes only apply to arrays and keys only to objects. The empty path "" is
the whole document.

Params the schemas cannot rule out (a malformed path, paths for `unflatten`
that contradict each other, documents nested deeper than MAX_DEPTH) are
refused with `ctx.reject`: the caller gets 400 VALIDATION_ERROR saying what
is wrong, and the `path` or param concerned in the error's details.
"""

import json
import re

_BARE_KEY_RE = re.compile(r'[^.\[\]"\s]+')
_BRACKET_RE = re.compile(r'\[\s*(?:(?P<index>-?\d+)|(?P<quoted>"(?:[^"\\]|\\.)*")|(?P<wildcard>\*))\s*\]')


# Path step matching every child of an object or array; a unique object so
# it can never be confused with a key that is literally "*".
WILDCARD = object()


def _parse_path(path, ctx):
    """Parse a path into steps: str (object key), int (array index) or WILDCARD."""
    steps = []
    position = 0
    while position < len(path):
        if path[position] == "[":
            match = _BRACKET_RE.match(path, position)
            if not match:
                ctx.reject(f"invalid path {path!r}: malformed [...] at position {position}", {"path": path})
            if match["index"] is not None:
                steps.append(int(match["index"]))
            elif match["quoted"] is not None:
                try:
                    steps.append(json.loads(match["quoted"]))
                except json.JSONDecodeError:
                    ctx.reject(f"invalid path {path!r}: bad escape in quoted key at position {position}", {"path": path})
            else:
                steps.append(WILDCARD)
        else:
            # Only the first step may omit the dot, so "a..b" or "a b" fail
            # loudly instead of silently meaning something else.
            if position > 0:
                if path[position] != ".":
                    ctx.reject(f"invalid path {path!r}: expected '.' or '[' at position {position}", {"path": path})
                position += 1
            match = _BARE_KEY_RE.match(path, position)
            if not match:
                ctx.reject(f"invalid path {path!r}: expected a key at position {position}", {"path": path})
            steps.append(WILDCARD if match[0] == "*" else match[0])
        position = match.end()
    return steps


def _format_path(steps):
    """Render concrete steps (keys and non-negative indexes) as a path string."""
    path = ""
    for step in steps:
        if isinstance(step, int):
            path += f"[{step}]"
        elif _BARE_KEY_RE.fullmatch(step) and step != "*":
            path += f".{step}" if path else step
        else:
            path += "[" + json.dumps(step, ensure_ascii=False) + "]"
    return path


def _children(node):
    if isinstance(node, dict):
        return node.items()
    if isinstance(node, list):
        return enumerate(node)
    return ()


# The host refuses results nested deeper than 200 levels, and every action
# wraps its document in at most three more; handlers recurse a level at a time.
MAX_DEPTH = 150


def _check_depth(value, name, ctx, outer=0):
    """Refuse `value` if, below `outer` levels, it nests deeper than MAX_DEPTH."""
    level, depth = [value], outer
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            ctx.reject(f"{name} is nested deeper than {MAX_DEPTH} levels", {"param": name})
        level = [child for node in level for _, child in _children(node)]


def _select(node, steps, trail):
    """Yield (concrete steps, value) for every match of steps below node."""
    if not steps:
        yield trail, node
        return
    step, rest = steps[0], steps[1:]
    if step is WILDCARD:
        for key, child in _children(node):
            yield from _select(child, rest, trail + [key])
    elif isinstance(step, int):
        if isinstance(node, list) and -len(node) <= step < len(node):
            # Report the positive index so the returned path is canonical.
            yield from _select(node[step], rest, trail + [step % len(node)])
    elif isinstance(node, dict) and step in node:
        yield from _select(node[step], rest, trail + [step])


def query(params, ctx):
    """Select values by path; a path that does not match simply yields no matches."""
    _check_depth(params["document"], "document", ctx)
    steps = _parse_path(params["path"], ctx)
    matches = [
        {"path": _format_path(trail), "value": value}
        for trail, value in _select(params["document"], steps, [])
    ]
    return {"matches": matches, "count": len(matches)}


def flatten(params, ctx):
    """Map every leaf path to its value.

    Empty objects and arrays are kept as leaves so that unflatten can rebuild
    the document exactly.
    """
    _check_depth(params["document"], "document", ctx)
    flat = {}

    def walk(node, trail):
        if isinstance(node, (dict, list)) and node:
            for key, child in _children(node):
                walk(child, trail + [key])
        else:
            flat[_format_path(trail)] = node

    for key, child in _children(params["document"]):
        walk(child, [key])
    return {"flat": flat}


class _Branch(dict):
    """An object or array being rebuilt by unflatten.

    Distinguishing branches from leaf values matters because a leaf may itself
    be a dict (an empty object kept by flatten). Arrays are keyed by int until
    every index has been seen, because paths may arrive in any order.
    """


def _finish(node, trail, ctx):
    if not isinstance(node, _Branch):
        return node
    if node and isinstance(next(iter(node)), int):
        if sorted(node) != list(range(len(node))):
            where = _format_path(trail)
            ctx.reject(
                f"array at {where or 'the root'} has indexes {sorted(node)}; they must run from 0 without gaps",
                {"path": where},
            )
        return [_finish(node[index], trail + [index], ctx) for index in range(len(node))]
    return {key: _finish(child, trail + [key], ctx) for key, child in node.items()}


def unflatten(params, ctx):
    """Rebuild a nested document from path keys, the inverse of flatten."""
    root = _Branch()
    for path, value in params["flat"].items():
        steps = _parse_path(path, ctx)
        if not steps:
            ctx.reject("the empty path cannot be combined with other paths", {"path": path})
        if any(step is WILDCARD or (isinstance(step, int) and step < 0) for step in steps):
            ctx.reject(f"path {path!r} must not use wildcards or negative indexes", {"path": path})
        _check_depth(value, f"flat[{path!r}]", ctx, outer=len(steps))
        node = root
        for depth, step in enumerate(steps):
            if node and isinstance(next(iter(node)), int) != isinstance(step, int):
                where = _format_path(steps[:depth]) or "the root"
                ctx.reject(f"path {path!r} mixes array indexes and object keys at {where}", {"path": path})
            if depth == len(steps) - 1:
                if step in node:
                    ctx.reject(f"path {path!r} conflicts with another path", {"path": path})
                node[step] = value
            else:
                node = node.setdefault(step, _Branch())
                if not isinstance(node, _Branch):
                    ctx.reject(f"path {path!r} goes through a value set by another path", {"path": path})
    return {"document": _finish(root, [], ctx)}


def _kind(value):
    # bool is a subclass of int in Python, but true and 1 differ in JSON.
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _json_equal(a, b):
    """Equality as JSON sees it: 1 == 1.0, but true != 1."""
    if _kind(a) != _kind(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_json_equal(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_json_equal, a, b))
    return a == b


def diff(params, ctx):
    """List what changed from `before` to `after`, path by path.

    Objects are compared key by key and arrays position by position, so an
    insertion at the front of an array shows up as changes plus one addition
    at the end.
    """
    added, removed, changed = [], [], []

    def walk(before, after, trail):
        if isinstance(before, dict) and isinstance(after, dict):
            for key, value in before.items():
                if key in after:
                    walk(value, after[key], trail + [key])
                else:
                    removed.append({"path": _format_path(trail + [key]), "value": value})
            for key, value in after.items():
                if key not in before:
                    added.append({"path": _format_path(trail + [key]), "value": value})
        elif isinstance(before, list) and isinstance(after, list):
            for index, value in enumerate(before):
                if index < len(after):
                    walk(value, after[index], trail + [index])
                else:
                    removed.append({"path": _format_path(trail + [index]), "value": value})
            for index in range(len(before), len(after)):
                added.append({"path": _format_path(trail + [index]), "value": after[index]})
        elif not _json_equal(before, after):
            changed.append({"path": _format_path(trail), "before": before, "after": after})

    _check_depth(params["before"], "before", ctx)
    _check_depth(params["after"], "after", ctx)
    walk(params["before"], params["after"], [])
    return {
        "equal": not (added or removed or changed),
        "added": added,
        "removed": removed,
        "changed": changed,
    }


def _merge(base, patch, arrays, null_deletes):
    """Merge patch into base without mutating either (new containers only)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None and null_deletes:
                merged.pop(key, None)
            elif key in merged or isinstance(value, dict):
                # Merging a new object into {} applies null_deletes inside it,
                # as JSON Merge Patch (RFC 7396) does.
                merged[key] = _merge(merged.get(key, {}), value, arrays, null_deletes)
            else:
                merged[key] = value
        return merged
    if isinstance(base, list) and isinstance(patch, list):
        if arrays == "concat":
            return base + patch
        if arrays == "union":
            result = list(base)
            for item in patch:
                if not any(_json_equal(item, existing) for existing in result):
                    result.append(item)
            return result
    return patch


def merge(params, ctx):
    """Deep-merge documents left to right; later documents win on conflicts."""
    arrays = params.get("arrays", "replace")
    null_deletes = params.get("nullDeletes", False)
    documents = params["documents"]
    for index, document in enumerate(documents):
        _check_depth(document, f"documents[{index}]", ctx)
    result = documents[0]
    for document in documents[1:]:
        result = _merge(result, document, arrays, null_deletes)
    return {"document": result}


def _sort_keys(node, reverse, recursive):
    if isinstance(node, dict):
        return {
            key: _sort_keys(node[key], reverse, recursive) if recursive else node[key]
            for key in sorted(node, reverse=reverse)
        }
    if isinstance(node, list) and recursive:
        return [_sort_keys(item, reverse, recursive) for item in node]
    return node


def sort_keys(params, ctx):
    """Order object keys by code point, which makes documents easy to compare
    by eye and gives stable output for hashing or version control."""
    _check_depth(params["document"], "document", ctx)
    document = _sort_keys(
        params["document"], params.get("descending", False), params.get("recursive", True)
    )
    return {"document": document}
