"""What changed between two versions' manifests, for operators choosing
which version runs."""

import json


def flatten(manifest, prefix=""):
    """{dotted path: value} of a manifest's leaves; a list is one leaf,
    written as compact JSON (a `required` list, the examples)."""
    leaves = {}
    for key, value in manifest.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            leaves.update(flatten(value, f"{path}."))
        else:
            leaves[path] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return leaves


def manifest_diff(old, new):
    """The fields that differ, as (path, old value or None, new value or
    None) in path order: None where the field is absent on that side."""
    before, after = flatten(old), flatten(new)
    return [
        (path, before.get(path), after.get(path))
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]
