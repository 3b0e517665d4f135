"""TTF-gap report statistics on hand-built checkpoint series with answers worked out here."""

import dataclasses
import math

import pytest

from ttfkit.scripts.gap_report import (
    CheckpointRow,
    headline,
    plot_gap,
    read_csv,
    summarize,
    wilson_interval,
    write_csv,
    write_report,
)
from ttfkit.scripts.sweep_report import compare_setting


def _row(opt, seed, step, val, succ, episodes=50, lr=1e-3):
    lo, hi = wilson_interval(succ * episodes, episodes)
    return CheckpointRow(opt, seed, lr, step, 0.1, val, succ, lo, hi, episodes)


def _gap_rows():
    # adamw: val loss rises while success rises (the TTF gap); min val loss picks the worst checkpoint.
    rows = [
        _row("adamw", 0, 100, 0.30, 0.20), _row("adamw", 0, 200, 0.40, 0.40), _row("adamw", 0, 300, 0.50, 0.60),
        _row("adamw", 1, 100, 0.32, 0.10), _row("adamw", 1, 200, 0.42, 0.30), _row("adamw", 1, 300, 0.52, 0.50),
        # dopr-adamw: higher success everywhere
        _row("dopr-adamw", 0, 100, 0.35, 0.80), _row("dopr-adamw", 0, 200, 0.45, 0.90), _row("dopr-adamw", 0, 300, 0.40, 1.00),
        _row("dopr-adamw", 1, 100, 0.36, 0.90), _row("dopr-adamw", 1, 200, 0.46, 0.90), _row("dopr-adamw", 1, 300, 0.41, 0.96),
    ]
    return rows


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    # closed form: centre 0.5, half width z*sqrt(0.25/10 + z^2/400)/(1+z^2/10)
    z = 1.959964
    half = z * math.sqrt(0.025 + z * z / 400) / (1 + z * z / 10)
    assert lo == pytest.approx(0.5 - half) and hi == pytest.approx(0.5 + half)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == pytest.approx(1.0)


def test_summary_statistics():
    summaries = {s.optimizer: s for s in summarize(_gap_rows())}
    a = summaries["adamw"]
    assert a.n_seeds == 2
    assert a.best_success == pytest.approx((0.6 + 0.5) / 2)
    assert a.best_success_std == pytest.approx(0.05)
    assert a.last3_success == pytest.approx((0.4 + 0.3) / 2)
    assert a.best_val_loss == pytest.approx((0.30 + 0.32) / 2)
    assert a.spearman == pytest.approx(1.0)  # loss and success rise together in every run
    assert a.picked_success == pytest.approx((0.2 + 0.1) / 2)
    assert a.regret == pytest.approx(0.55 - 0.15)
    d = summaries["dopr-adamw"]
    assert d.picked_success == pytest.approx((0.8 + 0.9) / 2)
    lo, hi = wilson_interval(50 + 48, 100)
    assert d.best_ci == pytest.approx((lo, hi))


def test_headline_states_the_winner_and_the_difference_interval():
    text = headline(summarize(_gap_rows()))
    assert text.startswith("dopr-adamw beat adamw here")
    close = [_row("adamw", 0, 100, 0.3, 0.50, episodes=10), _row("dopr-adamw", 0, 100, 0.3, 0.60, episodes=10)]
    assert "interval of the difference includes 0 (no clear difference)" in headline(summarize(close))
    assert "No DoPr" in headline(summarize([_row("adamw", 0, 1, 0.1, 0.5)]))


def test_headline_verdict_is_the_difference_interval_not_overlapping_wilson_intervals():
    # Newcombe (1998) example (a): 56/70 vs 48/80. The two Wilson intervals overlap ([0.69, 0.88] and
    # [0.49, 0.70]), but the interval of the difference is [+0.0524, +0.3339] (published), so DoPr wins.
    rows = [_row("dopr-adamw", 0, 100, 0.3, 56 / 70, episodes=70), _row("adamw", 0, 100, 0.3, 48 / 80, episodes=80)]
    d, b = sorted(summarize(rows), key=lambda s: s.optimizer != "dopr-adamw")
    assert d.best_ci[0] <= b.best_ci[1]  # the old test (overlap) would have called this "no clear difference"
    text = headline(summarize(rows))
    assert text.startswith("dopr-adamw beat adamw here")
    assert "difference +20% [+5%, +33%]" in text
    # one code path with the across-settings report: same interval, same verdict
    comparison = compare_setting("s", rows)[0]
    assert comparison.verdict == "DoPr wins"
    assert comparison.best_diff_ci == pytest.approx((0.0524, 0.3339), abs=5e-5)
    flipped = [dataclasses.replace(r, optimizer="adamw" if r.optimizer == "dopr-adamw" else "dopr-adamw") for r in rows]
    assert headline(summarize(flipped)).startswith("dopr-adamw did worse than adamw here")
    assert "difference -20% [-33%, -5%]" in headline(summarize(flipped))
    assert compare_setting("s", flipped)[0].verdict == "DoPr loses"


def test_csv_round_trip_and_report_files(tmp_path):
    rows = _gap_rows()
    write_csv(rows, tmp_path / "checkpoints.csv")
    back = read_csv(tmp_path / "checkpoints.csv")
    assert sorted(back, key=lambda r: (r.optimizer, r.seed, r.step)) == sorted(
        rows, key=lambda r: (r.optimizer, r.seed, r.step)
    )
    header = (tmp_path / "checkpoints.csv").read_text().splitlines()[0]
    assert header.startswith("optimizer,seed,lr,step,train_loss,val_loss,success,success_ci_low,success_ci_high")
    text = write_report(rows, tmp_path, "test study")
    assert (tmp_path / "report.md").read_text() == text
    assert "| adamw | 0.001 | 2 | 0.55 ± 0.05" in text
    plot_gap(rows, tmp_path / "gap.png")
    assert (tmp_path / "gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_read_csv_names_missing_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("optimizer,seed\nadamw,0\n")
    with pytest.raises(ValueError, match="missing column"):
        read_csv(path)
