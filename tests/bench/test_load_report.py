"""bench/load.py and bench/soak.py: argument handling, centre layout and the report maths
(trend verdicts, percentiles, export ratios), on synthetic samples. The benchmarks themselves
are scripts, run by hand (docs/bench/load.md)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bench import load, soak
from bench.centre_load import layout, pct, summarise_exports, summarise_loss


def _minutes(n: int) -> list[float]:
    return [60.0 * i for i in range(n)]


def test_trend_flags_a_steady_leak_and_not_noise() -> None:
    rnd = random.Random(7)
    t = _minutes(30)
    leak = [200 + 40 * ti / 3600 + rnd.gauss(0, 1.5) for ti in t]  # 40 MB/h
    flat = [200 + rnd.gauss(0, 3) for _ in t]
    step_back = [200 + (6 if 10 <= i < 20 else 0) for i in range(30)]  # a bump that goes away
    small = [200 + 10 * ti / 3600 for ti in t]  # 4.8 MB over the span: under the 8 MB floor
    got = soak.trend(t, leak, 8.0)
    assert got["verdict"] == "growth" and 35 < got["slope_per_hour"] < 45
    assert soak.trend(t, flat, 8.0)["verdict"] == "no growth"
    assert soak.trend(t, step_back, 8.0)["verdict"] == "no growth"
    assert soak.trend(t, small, 8.0)["verdict"] == "no growth"
    assert soak.trend(t, [30.0] * 30, 4.0)["verdict"] == "no growth"  # constant: zero residuals
    assert soak.trend(t[:2], leak[:2], 8.0)["verdict"] == "too few samples"


def test_analyse_leaves_the_settling_minutes_out() -> None:
    t = _minutes(20)
    # fds climb during the first 5 min (pools fill), then stay: no growth once settled
    samples: dict[str, list[Any]] = {
        "t": t,
        "rss_mb": [150.0 + min(i, 5) * 10 for i in range(20)],
        "rss_less_cache_mb": [150.0 + min(i, 5) * 10 for i in range(20)],
        "fds": [30 + min(i, 5) * 3 for i in range(20)],
        "threads": [20] * 20,
    }
    settled = soak.analyse(samples, 5 * 60)
    assert {q: v["verdict"] for q, v in settled.items()} == dict.fromkeys(soak.FLOORS, "no growth")
    assert settled["fds"]["n"] == 15
    assert soak.analyse(samples, 0)["rss_mb"]["verdict"] == "growth"


def test_a_bounded_cache_filling_is_told_apart_from_a_leak() -> None:
    t = _minutes(30)
    cache = [min(i * 3.0, 64.0) for i in range(30)]  # the AAC cache fills to its 64 MB bound
    samples: dict[str, list[Any]] = {
        "t": t,
        "rss_mb": [250.0 + c for c in cache],
        "rss_less_cache_mb": [250.0 + (i % 3) for i in range(30)],
        "fds": [40] * 30,
        "threads": [60] * 30,
    }
    got = soak.analyse(samples, 5 * 60)
    assert got["rss_mb"]["verdict"] == "growth"
    assert got["rss_less_cache_mb"]["verdict"] == "no growth"
    assert "rss_less_cache_mb" not in soak.analyse(
        {k: v for k, v in samples.items() if k != "rss_less_cache_mb"}, 0
    )


def test_arguments() -> None:
    a = load.parse([])
    assert (a.cameras, a.viewers, a.minutes, a.db_url) == (64, 20, 10.0, None)
    s = soak.parse([])
    assert (s.cameras, s.viewers, s.minutes, s.export_every, s.sample_seconds) == (16, 4, 30.0, 180.0, 60.0)
    for bad in (["--cameras", "3"], ["--minutes", "0"], ["--speed", "-1"]):
        with pytest.raises(SystemExit):
            load.parse(bad)
    opts = load.options(load.parse(["--cameras", "8", "--db-url", "postgresql://x@h/db"]))
    assert opts.cameras == 8 and opts.db_url == "postgresql://x@h/db"


def test_layout_gives_the_case_its_four_rooms() -> None:
    big = layout(64)
    assert len({c.room_id for c in big}) == 32 and len(big) == 64
    kinds = [next(c.room_kind for c in big if c.room_id == f"room{r:02d}") for r in range(4)]
    assert kinds == ["entry", "search", "waiting", "interrogation"]
    assert len({c.room_id for c in layout(4)}) == 4
    with pytest.raises(SystemExit):
        layout(3)


def test_report_maths() -> None:
    assert pct([], 95) is None
    assert pct([float(i) for i in range(1, 101)], 95) == 95.0
    result: dict[str, Any] = {
        "options": {"cameras": 8, "viewers": 2, "minutes": 1.0, "db_url": None},
        "exports": [
            {"state": "done", "seconds": 10.0, "footage_bytes": 50_000_000, "footage_MBps": 5.0},
            {"state": "done", "seconds": 5.0, "footage_bytes": 50_000_000, "footage_MBps": 10.0},
            {"state": "done", "seconds": 6.0, "footage_bytes": 50_000_000, "footage_MBps": 8.0},
            {"state": "failed", "error": {}, "seconds": 1.0},
        ],
        "export_alone": {"footage_MBps": 16.0},
        "cp": {"MBps": 400.0},
        "cameras": [
            {
                "video_frames_missing": 0,
                "audio_seconds_missing": 0.0,
                "unrecorded_in_span_s": 0.0,
                "gap_records": [],
                "span_s": 100.0,
                "tail_s": -0.2,
            },
            {
                "video_frames_missing": 3,
                "audio_seconds_missing": 0.12,
                "unrecorded_in_span_s": 0.5,
                "gap_records": [{"cause": "stall", "seconds": 0.5}],
                "span_s": 99.0,
                "tail_s": 0.4,
            },
        ],
        "playback": {
            "open": {"n": 0, "p50_ms": None, "p95_ms": None},
            "seek": {"n": 0, "p50_ms": None, "p95_ms": None},
            "errors": {},
        },
        "samples": {"load1": [1.0, 3.0], "rss_mb": [100.0, 120.0]},
        "phase": {"pipeline_cpu_cores": 0.5},
    }
    exp = summarise_exports(result)
    assert (exp["done"], exp["failed"], exp["median_footage_MBps"]) == (3, 1, 8.0)
    assert (exp["ratio_vs_alone"], exp["ratio_vs_cp"]) == (0.5, 0.02)
    loss = summarise_loss(result["cameras"])
    assert loss["cameras_with_holes"] == 1 and loss["video_frames_missing"] == 3 and loss["gap_records"] == 1
    text = load.table(result)
    assert "| video frames missing (all cameras) | 3 (1 cameras with holes) |" in text
    assert "8.0 MB/s" in text and "ratio 0.5" in text
