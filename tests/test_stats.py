"""The comparison's fast intervals agree with a brute-force bootstrap that resamples every row."""

import numpy as np
import pytest

from telemetry_assets.analytics.stats import quantile_difference, ratio_difference


def brute_force(baseline, candidate, statistic, resamples=4000, seed=1):
    rng = np.random.default_rng(seed)
    diffs = np.array([
        statistic(candidate[rng.integers(0, len(candidate), len(candidate))])
        - statistic(baseline[rng.integers(0, len(baseline), len(baseline))])
        for _ in range(resamples)])
    return np.quantile(diffs, [0.025, 0.975])


@pytest.mark.parametrize("n_baseline, n_candidate, shift", [(300, 400, 1.0), (2000, 1500, 1.3), (120, 150, 1.0)])
def test_the_order_statistic_bootstrap_of_p95_matches_resampling_rows(n_baseline, n_candidate, shift):
    rng = np.random.default_rng(n_baseline)
    baseline = rng.lognormal(6, 0.6, n_baseline)
    candidate = rng.lognormal(6, 0.6, n_candidate) * shift
    result = quantile_difference(baseline, candidate, 0.95)
    low, high = brute_force(baseline, candidate, lambda x: np.quantile(x, 0.95))
    width = high - low
    assert result.difference == pytest.approx(np.quantile(candidate, 0.95) - np.quantile(baseline, 0.95))
    assert abs(result.low - low) < 0.1 * width and abs(result.high - high) < 0.1 * width
    assert (result.p_value < 0.05) == (low > 0 or high < 0)


def test_a_single_latency_per_side_has_a_point_interval():
    result = quantile_difference(np.array([100.0]), np.array([250.0]), 0.95)
    assert (result.difference, result.low, result.high) == (150.0, 150.0, 150.0)


def cost_rows(rng, n, cost, success_rate):
    return np.column_stack([rng.gamma(2.0, cost / 2, n), rng.random(n) < success_rate]).astype(float)


@pytest.mark.parametrize("success_rate", [0.3, 0.05])
def test_the_delta_method_interval_for_cost_per_outcome_matches_resampling_rows(success_rate):
    rng = np.random.default_rng(3)
    baseline, candidate = cost_rows(rng, 3000, 0.002, success_rate), cost_rows(rng, 2500, 0.0024, success_rate)
    result = ratio_difference(baseline, candidate)
    ratio = lambda rows: rows[:, 0].sum() / rows[:, 1].sum()
    low, high = brute_force(baseline, candidate, ratio, resamples=2000)
    assert result.difference == pytest.approx(ratio(candidate) - ratio(baseline))
    width = high - low
    assert abs(result.low - low) < 0.1 * width and abs(result.high - high) < 0.1 * width


def test_a_side_without_a_successful_outcome_has_no_cost_per_outcome():
    rng = np.random.default_rng(4)
    baseline, candidate = cost_rows(rng, 200, 0.002, 0.3), cost_rows(rng, 200, 0.002, 0.0)
    result = ratio_difference(baseline, candidate)
    assert result.baseline > 0 and result.candidate is None and result.difference is None and result.p_value is None


def test_cost_per_outcome_is_the_same_to_the_last_bit_whatever_order_the_rows_come_in():
    """DuckDB hands the turns over in whatever order its threads read them, and a sum of floats
    depends on its order: a re-run must not change the day's comparison."""
    rng = np.random.default_rng(5)
    baseline, candidate = cost_rows(rng, 3000, 0.002, 0.3), cost_rows(rng, 2500, 0.0024, 0.3)
    results = {ratio_difference(baseline[rng.permutation(len(baseline))], candidate[rng.permutation(len(candidate))])
               for _ in range(20)}
    assert len(results) == 1
