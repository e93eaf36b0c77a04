"""Linear algebra with numpy, from the operator's shared packages
(SANDBOX_SHARED_PACKAGES): numpy holds extension modules, which a tenant's
upload may not vendor, so it comes from the set the operator curates and
mounts read-only for every run."""

import numpy


def solve(params, ctx):
    """Solve A x = b for a square A; a singular A is the caller's mistake."""
    a = numpy.array(params["a"], dtype=float)
    b = numpy.array(params["b"], dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        ctx.reject("a must be a square matrix (a list of rows of equal length)")
    if b.shape != (a.shape[0],):
        ctx.reject(f"b must hold {a.shape[0]} numbers, one per row of a")
    try:
        x = numpy.linalg.solve(a, b)
    except numpy.linalg.LinAlgError:
        ctx.reject("a is singular: the system has no single solution")
    return {"x": x.tolist(), "determinant": float(numpy.linalg.det(a)), "numpyVersion": numpy.__version__}
