"""Descriptive statistics, histograms, correlation, regression and smoothing.

The schemas already guarantee arrays of numbers of a minimum length; what
they cannot express is refused with `ctx.reject` (400 VALIDATION_ERROR for
the caller): non-finite numbers (some JSON parsers accept NaN and Infinity),
paired arrays of different lengths, inputs for which a statistic is
undefined, such as a constant series, and inputs whose statistic is beyond
the largest number a result can hold (the variance of -1e308 and 1e308).

Values anywhere in the range of doubles are handled: series are scaled by a
power of two (which loses nothing) before their deviations are squared, and
histogram edges are computed exactly, so nothing overflows or underflows on
the way to a result that does not.
"""

import math
import statistics
import sys
from bisect import bisect_right
from collections import Counter
from fractions import Fraction


def _numbers(params, name, ctx, minimum=1):
    values = params[name]
    if len(values) < minimum:
        ctx.reject(f"{name} needs at least {minimum} values, got {len(values)}", {"param": name})
    for index, value in enumerate(values):
        if not math.isfinite(value):
            ctx.reject(f"{name}[{index}] is {value}, but only finite numbers are allowed", {"param": f"{name}[{index}]"})
    return values


def _paired(params, ctx):
    x, y = _numbers(params, "x", ctx, 2), _numbers(params, "y", ctx, 2)
    if len(x) != len(y):
        ctx.reject(f"x and y must have the same length (got {len(x)} and {len(y)})", {"x": len(x), "y": len(y)})
    return x, y


def _require_variation(values, name, consequence, ctx):
    if min(values) == max(values):
        ctx.reject(f"all {name} values are equal, so {consequence} is undefined", {"param": name})


def _too_large(name, ctx):
    ctx.reject(
        f"the {name} is beyond the largest number a result can hold ({sys.float_info.max:.4g})",
        {"statistic": name},
    )


def _reportable(value, name, ctx):
    """`value` (a float or a Fraction), refused unless a finite float."""
    try:
        value = float(value)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        _too_large(name, ctx)
    return value


def _scaled(values):
    """(values / 2**exponent, exponent), the largest magnitude scaled into
    [0.5, 1). Dividing by a power of two is exact (a value below 2**-1074
    of the largest loses digits no result could show), and squares and
    sums of scaled deviations can neither overflow nor underflow."""
    exponent = math.frexp(max(map(abs, values)))[1]
    return [math.ldexp(value, -exponent) for value in values], exponent


def _unscaled(value, exponent, name, ctx):
    try:
        return math.ldexp(value, exponent)
    except OverflowError:
        _too_large(name, ctx)


def _percentile(ordered, p):
    """Linear interpolation between closest ranks.

    This is the "inclusive" method of statistics.quantiles and numpy's
    default, so p0 is the minimum, p100 the maximum and p50 the median,
    which is what most people expect from a percentile.
    """
    position = (len(ordered) - 1) * p / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def describe(params, ctx):
    """Summarise a sample in one call.

    Variance and standard deviation use the sample (n - 1) formulas unless
    `population` is set; for a single value the sample versions are
    undefined and reported as null. Modes are only reported when some value
    repeats, since "every value is a mode" tells the caller nothing.

    The variance is computed exactly (statistics does) and refused when it
    is beyond the largest double, as it is for values spread wider than
    about 1e154. Below that no difference of two values overflows, and the
    values of a sum that does are all of one sign: its total is beyond the
    largest double too.
    """
    values = _numbers(params, "values", ctx)
    population = params.get("population", False)
    ordered = sorted(values)
    counts = Counter(values)
    highest = max(counts.values())
    try:
        if population:
            variance = statistics.pvariance(values)
        else:
            variance = statistics.variance(values) if len(values) > 1 else None
    except OverflowError:
        _too_large("variance", ctx)
    try:
        total = math.fsum(values)
    except OverflowError:
        _too_large("sum", ctx)
    q1, q2, q3 = (_percentile(ordered, p) for p in (25, 50, 75))
    return {
        "count": len(values),
        "sum": total,
        "mean": total / len(values),
        "median": q2,
        "modes": sorted(value for value, count in counts.items() if count == highest) if highest > 1 else [],
        "min": ordered[0],
        "max": ordered[-1],
        "range": ordered[-1] - ordered[0],
        "variance": None if variance is None else float(variance),
        "stdev": None if variance is None else math.sqrt(variance),
        "quartiles": {"q1": q1, "q2": q2, "q3": q3},
        "iqr": q3 - q1,
        "percentiles": {
            f"{p:g}": _percentile(ordered, p) for p in params.get("percentiles", [])
        },
        "population": population,
    }


def _bound(params, name, default, ctx):
    value = params.get(name, default)
    if not math.isfinite(value):
        ctx.reject(f"{name} is {value}, but only finite numbers are allowed", {"param": name})
    return value


def histogram(params, ctx):
    """Count values in equal-width bins.

    Each bin includes its start and excludes its end, except the last, which
    also includes the maximum so that no value in range is lost. Values
    outside an explicit min/max range are counted in `outside`. When every
    value is the same, the range is widened by 0.5 either side (as numpy
    does) because zero-width bins cannot hold anything.
    """
    values = _numbers(params, "values", ctx)
    bins = params.get("bins", 10)
    low = _bound(params, "min", min(values), ctx)
    high = _bound(params, "max", max(values), ctx)
    if high < low:
        ctx.reject(f"max ({high}) must not be less than min ({low})", {"min": low, "max": high})
    if high == low:
        low, high = low - 0.5, high + 0.5
    # Edges are computed exactly from the range, each rounded once, rather
    # than by repeatedly adding the width: rounding errors cannot accumulate,
    # the last edge is exact, and a range wider than the largest double
    # (-1e308 to 1e308) still has edges between its ends.
    span = Fraction(high) - Fraction(low)
    edges = [float(Fraction(low) + span * i / bins) for i in range(bins)] + [float(high)]
    counts = [0] * bins
    outside = 0
    for value in values:
        if value < low or value > high:
            outside += 1
        else:
            counts[min(bisect_right(edges, value) - 1, bins - 1)] += 1
    return {
        "bins": [
            {"start": edges[i], "end": edges[i + 1], "count": counts[i]} for i in range(bins)
        ],
        "binWidth": _reportable(span / bins, "bin width", ctx),
        "total": len(values),
        "outside": outside,
    }


def _ranks(values):
    """1-based ranks, with tied values sharing the average of their ranks."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def correlation(params, ctx):
    """Pearson measures linear association; Spearman is Pearson on ranks, so
    it captures any monotonic relationship and is robust to outliers. Both
    are unchanged by scaling, so series are scaled first (see _scaled)."""
    x, y = _paired(params, ctx)
    method = params.get("method", "pearson")
    for values, name in ((x, "x"), (y, "y")):
        _require_variation(values, name, "correlation", ctx)
    if method == "spearman":
        x, y = _ranks(x), _ranks(y)
    coefficient = statistics.correlation(_scaled(x)[0], _scaled(y)[0])
    return {"method": method, "n": len(x), "coefficient": coefficient}


def linear_regression(params, ctx):
    """Ordinary least squares fit of y = slope * x + intercept.

    rSquared is the share of y's variance the line explains. When y is
    constant there is no variance to explain and the fit is exact, so it is
    reported as 1.0 rather than left undefined. The fit is made on scaled
    series (see _scaled) and its slope and intercept scaled back.
    """
    x, y = _paired(params, ctx)
    _require_variation(x, "x", "the slope", ctx)
    (xs, x_exponent), (ys, y_exponent) = _scaled(x), _scaled(y)
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    sxx = math.fsum((a - mean_x) ** 2 for a in xs)
    sxy = math.fsum((a - mean_x) * (b - mean_y) for a, b in zip(xs, ys))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    residual = math.fsum((b - (slope * a + intercept)) ** 2 for a, b in zip(xs, ys))
    total = math.fsum((b - mean_y) ** 2 for b in ys)
    slope = _unscaled(slope, y_exponent - x_exponent, "slope", ctx)
    intercept = _unscaled(intercept, y_exponent, "intercept", ctx)
    result = {
        "slope": slope,
        "intercept": intercept,
        "rSquared": 1 - residual / total if total else 1.0,
        "n": len(x),
    }
    if "predict" in params:
        result["predictions"] = [
            {"x": a, "y": _reportable(slope * a + intercept, f"prediction for x = {a:g}", ctx)}
            for a in _numbers(params, "predict", ctx, 0)
        ]
    return result


def moving_average(params, ctx):
    """Smooth a series.

    `simple` averages each trailing window of `window` values, so it returns
    len(values) - window + 1 averages; `offset` is the index in the input of
    the value the first average ends at. `exponential` uses the conventional
    smoothing factor 2 / (window + 1), starts from the first value and
    returns one average per input value. Both average scaled values (see
    _scaled), so that sums of values near the largest doubles cannot overflow.
    """
    values = _numbers(params, "values", ctx)
    window = params.get("window", 3)
    method = params.get("method", "simple")
    scaled, exponent = _scaled(values)
    if method == "simple":
        if window > len(values):
            ctx.reject(
                f"window ({window}) is larger than the number of values ({len(values)})",
                {"window": window, "values": len(values)},
            )
        averages = [
            statistics.fmean(scaled[end - window:end]) for end in range(window, len(values) + 1)
        ]
        offset = window - 1
    else:
        alpha = 2 / (window + 1)
        averages = [float(scaled[0])]
        for value in scaled[1:]:
            averages.append(alpha * value + (1 - alpha) * averages[-1])
        offset = 0
    averages = [_unscaled(average, exponent, "moving average", ctx) for average in averages]
    return {"method": method, "window": window, "offset": offset, "averages": averages}
