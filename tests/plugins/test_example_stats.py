"""The `stats` example plugin, handler by handler (see example_plugins.py
for how it is loaded and called)."""

import math
import statistics

import pytest

from sandbox.child.runtime import InvalidParams
from tests.plugins.example_plugins import call, load, schema_errors


def st(action, **params):
    return call("stats", action, params)


def test_describe_sample():
    result = st("describe", values=[2, 4, 4, 4, 5, 5, 7, 9], percentiles=[0, 10, 100, 12.5])
    assert result["count"] == 8
    assert result["sum"] == 40
    assert result["mean"] == 5
    assert result["median"] == 4.5
    assert result["modes"] == [4]
    assert (result["min"], result["max"], result["range"]) == (2, 9, 7)
    assert result["variance"] == pytest.approx(32 / 7)
    assert result["stdev"] == pytest.approx(math.sqrt(32 / 7))
    assert result["quartiles"] == {"q1": 4, "q2": 4.5, "q3": 5.5}
    assert result["iqr"] == 1.5
    assert result["percentiles"] == pytest.approx({"0": 2, "10": 3.4, "100": 9, "12.5": 3.75})
    assert result["population"] is False


def test_describe_population():
    result = st("describe", values=[2, 4, 4, 4, 5, 5, 7, 9], population=True)
    assert result["variance"] == pytest.approx(4)
    assert result["stdev"] == pytest.approx(2)
    assert result["population"] is True


def test_describe_quartiles_match_statistics_inclusive_method():
    values = [12.5, 3, 7.25, 9, 15, 3, 21, -4]
    result = st("describe", values=values)
    expected = statistics.quantiles(values, n=4, method="inclusive")
    assert [result["quartiles"][q] for q in ("q1", "q2", "q3")] == pytest.approx(expected)


def test_describe_single_value():
    result = st("describe", values=[5])
    assert result["mean"] == result["median"] == 5
    assert result["variance"] is None and result["stdev"] is None
    assert result["modes"] == []
    assert st("describe", values=[5], population=True)["variance"] == 0


def test_describe_modes():
    assert st("describe", values=[1, 2, 3])["modes"] == []
    assert st("describe", values=[3, 1, 3, 1, 2])["modes"] == [1, 3]


def test_describe_rejects_bad_values():
    assert schema_errors("stats", "describe", {"values": []})
    assert schema_errors("stats", "describe", {"values": [1, "2"]})
    assert schema_errors("stats", "describe", {"values": [1], "percentiles": [101]})
    with pytest.raises(InvalidParams, match="finite"):
        st("describe", values=[1, float("nan")])


def test_histogram_counts_with_inclusive_last_bin():
    result = st("histogram", values=[1, 2, 2, 3, 3, 3, 4, 4, 5], bins=4)
    assert result["bins"] == [
        {"start": 1, "end": 2, "count": 1},
        {"start": 2, "end": 3, "count": 2},
        {"start": 3, "end": 4, "count": 3},
        {"start": 4, "end": 5, "count": 3},
    ]
    assert result["binWidth"] == 1
    assert (result["total"], result["outside"]) == (9, 0)


def test_histogram_explicit_range_counts_outside_values():
    result = st("histogram", values=[-1, 0, 19.99, 20, 100, 100.5], bins=5, min=0, max=100)
    assert [b["count"] for b in result["bins"]] == [2, 1, 0, 0, 1]
    assert [b["start"] for b in result["bins"]] == [0, 20, 40, 60, 80]
    assert result["outside"] == 2


def test_histogram_float_values_land_in_every_bin_once():
    values = [i / 10 for i in range(11)]
    result = st("histogram", values=values, bins=10)
    assert sum(b["count"] for b in result["bins"]) == 11
    assert result["bins"][-1]["end"] == 1.0


def test_histogram_constant_values_widen_range():
    result = st("histogram", values=[3, 3, 3], bins=2)
    assert result["bins"] == [
        {"start": 2.5, "end": 3.0, "count": 0},
        {"start": 3.0, "end": 3.5, "count": 3},
    ]


def test_histogram_errors():
    with pytest.raises(InvalidParams, match="must not be less than min"):
        st("histogram", values=[1, 2], min=5, max=1)
    assert schema_errors("stats", "histogram", {"values": [1], "bins": 0})


def test_correlation_pearson():
    assert st("correlation", x=[1, 2, 3, 4], y=[2, 4, 6, 8])["coefficient"] == pytest.approx(1)
    assert st("correlation", x=[1, 2, 3, 4], y=[8, 6, 4, 2])["coefficient"] == pytest.approx(-1)
    result = st("correlation", x=[1, 2, 3, 4, 5], y=[2, 4, 5, 4, 5])
    assert result == {"method": "pearson", "n": 5, "coefficient": pytest.approx(math.sqrt(0.6))}


def test_correlation_spearman_captures_monotonic_relationships():
    x, y = [1, 2, 3, 4, 5], [1, 4, 9, 16, 1000]
    assert st("correlation", x=x, y=y, method="spearman")["coefficient"] == pytest.approx(1)
    assert st("correlation", x=x, y=y)["coefficient"] < 0.9


def test_correlation_spearman_averages_tied_ranks():
    assert load("stats")[1]._ranks([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    result = st("correlation", x=[1, 2, 2, 3], y=[1, 3, 2, 4], method="spearman")
    assert result["coefficient"] == pytest.approx(math.sqrt(0.9))


@pytest.mark.parametrize(
    "x,y,message",
    [
        ([1, 2, 3], [1, 2], "same length"),
        ([1, 1, 1], [1, 2, 3], "all x values are equal"),
        ([1, 2, 3], [4, 4, 4], "all y values are equal"),
        ([1, float("inf")], [1, 2], "finite"),
    ],
)
def test_correlation_errors(x, y, message):
    with pytest.raises(InvalidParams, match=message):
        st("correlation", x=x, y=y)


def test_correlation_needs_two_pairs():
    assert schema_errors("stats", "correlation", {"x": [1], "y": [1]})


def test_linear_regression_exact_line_with_predictions():
    result = st("linearRegression", x=[1, 2, 3, 4], y=[3, 5, 7, 9], predict=[0, 10])
    assert result == {
        "slope": pytest.approx(2),
        "intercept": pytest.approx(1),
        "rSquared": pytest.approx(1),
        "n": 4,
        "predictions": [{"x": 0, "y": pytest.approx(1)}, {"x": 10, "y": pytest.approx(21)}],
    }


def test_linear_regression_noisy_data():
    result = st("linearRegression", x=[1, 2, 3, 4, 5], y=[2, 4, 5, 4, 5])
    assert result["slope"] == pytest.approx(0.6)
    assert result["intercept"] == pytest.approx(2.2)
    assert result["rSquared"] == pytest.approx(0.6)
    assert "predictions" not in result


def test_linear_regression_constant_y_is_a_perfect_flat_fit():
    result = st("linearRegression", x=[1, 2, 3], y=[4, 4, 4])
    assert (result["slope"], result["intercept"], result["rSquared"]) == (0, 4, 1)


def test_linear_regression_errors():
    with pytest.raises(InvalidParams, match="all x values are equal"):
        st("linearRegression", x=[2, 2, 2], y=[1, 2, 3])
    with pytest.raises(InvalidParams, match="same length"):
        st("linearRegression", x=[1, 2], y=[1, 2, 3])


def test_moving_average_simple():
    result = st("movingAverage", values=[10, 12, 14, 13, 15, 18, 20], window=3)
    assert result["method"] == "simple"
    assert result["offset"] == 2
    assert result["averages"] == pytest.approx([12, 13, 14, 46 / 3, 53 / 3])


def test_moving_average_window_edges():
    assert st("movingAverage", values=[1, 2, 3], window=1)["averages"] == [1, 2, 3]
    assert st("movingAverage", values=[1, 2, 3], window=3)["averages"] == [2]
    with pytest.raises(InvalidParams, match="larger than the number of values"):
        st("movingAverage", values=[1, 2], window=3)


def test_moving_average_exponential():
    result = st("movingAverage", values=[10, 12, 14, 13], window=3, method="exponential")
    # alpha = 2 / (3 + 1) = 0.5
    assert result["averages"] == pytest.approx([10, 11, 12.5, 12.75])
    assert result["offset"] == 0
    assert st("movingAverage", values=[7], window=5, method="exponential")["averages"] == [7]


# Values near the largest double (about 1.8e308): what fits in a result is
# computed, what does not is refused; nothing overflows into an error of the
# plugin's own or a wrong answer.


def test_describe_refuses_a_variance_beyond_the_largest_double():
    for values in ([1e308, -1e308], [1e200, 3e200]):
        with pytest.raises(InvalidParams, match="variance is beyond the largest number") as refused:
            st("describe", values=values)
        assert refused.value.details == {"statistic": "variance"}


def test_describe_refuses_a_sum_beyond_the_largest_double():
    with pytest.raises(InvalidParams, match="sum is beyond"):
        st("describe", values=[1e308, 1e308])
    result = st("describe", values=[8e307, 8e307])
    assert (result["sum"], result["mean"], result["variance"]) == (1.6e308, 8e307, 0)


def test_histogram_of_values_spanning_more_than_the_largest_double():
    result = st("histogram", values=[1e308, -1e308, 0], bins=4)
    assert [(b["start"], b["end"], b["count"]) for b in result["bins"]] == [
        (-1e308, -5e307, 1), (-5e307, 0, 0), (0, 5e307, 1), (5e307, 1e308, 1)
    ]
    assert result["binWidth"] == 5e307
    with pytest.raises(InvalidParams, match="bin width is beyond"):
        st("histogram", values=[1e308, -1e308], bins=1)


def test_histogram_refuses_non_finite_bounds():
    with pytest.raises(InvalidParams, match="max is inf"):
        st("histogram", values=[1, 2], max=float("inf"))


def test_correlation_of_huge_and_tiny_values():
    expected = statistics.correlation([1, -1, 0], [1, 2, 4])
    assert st("correlation", x=[1e308, -1e308, 0], y=[1, 2, 4])["coefficient"] == pytest.approx(expected)
    assert st("correlation", x=[1e-200, -1e-200, 0], y=[1, 2, 4])["coefficient"] == pytest.approx(expected)


def test_linear_regression_of_huge_and_tiny_values():
    result = st("linearRegression", x=[1e-200, 2e-200, 3e-200], y=[1, 2, 3], predict=[4e-200])
    assert result["slope"] == pytest.approx(1e200) and result["intercept"] == pytest.approx(0, abs=1e-9)
    assert result["predictions"] == [{"x": 4e-200, "y": pytest.approx(4)}]
    result = st("linearRegression", x=[1e308, -1e308], y=[1, -1])
    assert result["slope"] == pytest.approx(1e-308) and result["rSquared"] == pytest.approx(1)
    with pytest.raises(InvalidParams, match="slope is beyond"):
        st("linearRegression", x=[0, 1e-300], y=[0, 1e300])
    with pytest.raises(InvalidParams, match=r"prediction for x = 1e\+?10 is beyond"):
        st("linearRegression", x=[0, 1], y=[0, 1e300], predict=[1e10])


def test_moving_average_of_huge_values():
    assert st("movingAverage", values=[1e308, 1e308, 1e308], window=2)["averages"] == [1e308, 1e308]

