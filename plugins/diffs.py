"""What changed between two versions' manifests, for operators choosing
which version runs."""

import difflib
import json


def manifest_diff(old, new):
    """The unified diff of two manifests as (kind, line) pairs, kind one of
    "added", "removed", "context" or "hunk"; empty when they are the same.
    Keys are sorted so that only real changes show."""

    def lines(manifest):
        return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False).splitlines()

    kinds = {"+": "added", "-": "removed", " ": "context", "@": "hunk"}
    diff = difflib.unified_diff(lines(old), lines(new), lineterm="", n=2)
    # The first two lines name the files, which these are not.
    return [(kinds[line[0]], line) for line in list(diff)[2:]]
