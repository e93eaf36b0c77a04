"""Descriptive statistics, histograms, correlation, regression and smoothing.

The schemas already guarantee arrays of numbers of a minimum length; what
they cannot express raises ValueError here: non-finite numbers (some JSON
parsers accept NaN and Infinity), paired arrays of different lengths, and
inputs for which a statistic is undefined, such as a constant series.
"""

import math
import statistics
from bisect import bisect_right
from collections import Counter


def _numbers(params, name, minimum=1):
    values = params[name]
    if len(values) < minimum:
        raise ValueError(f"{name} needs at least {minimum} values, got {len(values)}")
    for index, value in enumerate(values):
        if not math.isfinite(value):
            raise ValueError(f"{name}[{index}] is {value}, but only finite numbers are allowed")
    return values


def _paired(params):
    x, y = _numbers(params, "x", 2), _numbers(params, "y", 2)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length (got {len(x)} and {len(y)})")
    return x, y


def _require_variation(values, name, consequence):
    if min(values) == max(values):
        raise ValueError(f"all {name} values are equal, so {consequence} is undefined")


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
    """
    values = _numbers(params, "values")
    population = params.get("population", False)
    ordered = sorted(values)
    counts = Counter(values)
    highest = max(counts.values())
    if population:
        variance = statistics.pvariance(values)
    else:
        variance = statistics.variance(values) if len(values) > 1 else None
    q1, q2, q3 = (_percentile(ordered, p) for p in (25, 50, 75))
    return {
        "count": len(values),
        "sum": math.fsum(values),
        "mean": statistics.fmean(values),
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


def histogram(params, ctx):
    """Count values in equal-width bins.

    Each bin includes its start and excludes its end, except the last, which
    also includes the maximum so that no value in range is lost. Values
    outside an explicit min/max range are counted in `outside`. When every
    value is the same, the range is widened by 0.5 either side (as numpy
    does) because zero-width bins cannot hold anything.
    """
    values = _numbers(params, "values")
    bins = params.get("bins", 10)
    low = params.get("min", min(values))
    high = params.get("max", max(values))
    if high < low:
        raise ValueError(f"max ({high}) must not be less than min ({low})")
    if high == low:
        low, high = low - 0.5, high + 0.5
    # Edges are computed from the range rather than by repeatedly adding the
    # width, so rounding errors cannot accumulate and the last edge is exact.
    edges = [low + (high - low) * i / bins for i in range(bins)] + [float(high)]
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
        "binWidth": (high - low) / bins,
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
    it captures any monotonic relationship and is robust to outliers."""
    x, y = _paired(params)
    method = params.get("method", "pearson")
    for values, name in ((x, "x"), (y, "y")):
        _require_variation(values, name, "correlation")
    if method == "spearman":
        x, y = _ranks(x), _ranks(y)
    return {"method": method, "n": len(x), "coefficient": statistics.correlation(x, y)}


def linear_regression(params, ctx):
    """Ordinary least squares fit of y = slope * x + intercept.

    rSquared is the share of y's variance the line explains. When y is
    constant there is no variance to explain and the fit is exact, so it is
    reported as 1.0 rather than left undefined.
    """
    x, y = _paired(params)
    _require_variation(x, "x", "the slope")
    mean_x, mean_y = statistics.fmean(x), statistics.fmean(y)
    sxx = math.fsum((a - mean_x) ** 2 for a in x)
    sxy = math.fsum((a - mean_x) * (b - mean_y) for a, b in zip(x, y))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    residual = math.fsum((b - (slope * a + intercept)) ** 2 for a, b in zip(x, y))
    total = math.fsum((b - mean_y) ** 2 for b in y)
    result = {
        "slope": slope,
        "intercept": intercept,
        "rSquared": 1 - residual / total if total else 1.0,
        "n": len(x),
    }
    if "predict" in params:
        result["predictions"] = [
            {"x": a, "y": slope * a + intercept} for a in _numbers(params, "predict", 0)
        ]
    return result


def moving_average(params, ctx):
    """Smooth a series.

    `simple` averages each trailing window of `window` values, so it returns
    len(values) - window + 1 averages; `offset` is the index in the input of
    the value the first average ends at. `exponential` uses the conventional
    smoothing factor 2 / (window + 1), starts from the first value and
    returns one average per input value.
    """
    values = _numbers(params, "values")
    window = params.get("window", 3)
    method = params.get("method", "simple")
    if method == "simple":
        if window > len(values):
            raise ValueError(f"window ({window}) is larger than the number of values ({len(values)})")
        averages = [
            statistics.fmean(values[end - window:end]) for end in range(window, len(values) + 1)
        ]
        offset = window - 1
    else:
        alpha = 2 / (window + 1)
        averages = [float(values[0])]
        for value in values[1:]:
            averages.append(alpha * value + (1 - alpha) * averages[-1])
        offset = 0
    return {"method": method, "window": window, "offset": offset, "averages": averages}
