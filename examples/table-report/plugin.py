"""Render rows as a text table with tabulate, a pure-Python package this
plugin vendors as a wheel (vendor/tabulate-0.9.0-py3-none-any.whl, pinned in
requirements.lock): the sandbox imports it from the version's own read-only
tree."""

import tabulate

FORMATS = ("plain", "simple", "github", "grid", "pipe", "orgtbl", "rst", "html", "tsv")


def render(params, ctx):
    """Render `rows` (lists of cells) under `headers` in a tabulate format.

    Rows of different lengths are the caller's mistake, not a table to pad
    silently, so they are refused."""
    rows = params["rows"]
    headers = params.get("headers", [])
    widths = {len(row) for row in rows} | ({len(headers)} if headers else set())
    if len(widths) > 1:
        ctx.reject("every row (and the headers, if any) must have the same number of cells",
                   {"lengths": sorted(widths)})
    table = tabulate.tabulate(rows, headers=headers, tablefmt=params.get("format", "simple"),
                              floatfmt=params.get("floatFormat", "g"))
    return {"table": table, "rows": len(rows), "tabulateVersion": tabulate.__version__}
