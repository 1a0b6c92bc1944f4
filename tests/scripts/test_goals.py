"""Issue 13's goal verdicts on fixed results: bounds, paired ratios, not-measured reasons, and
evidence only where a goal was missed."""

from __future__ import annotations

from typing import Any

from benchlib.doc import verdict_lines
from benchlib.goals import goals


def _http(rps: list[float], p50: float, p99: float, cpu: float) -> list[dict[str, Any]]:
    return [
        {"rps": r, "p50_ms": p50, "p99_ms": p99, "server_cpu_us_per_step": cpu,
         "server_cores": 0.9} for r in rps
    ]  # fmt: skip


def _results() -> dict[str, Any]:
    return {
        "http": {
            # paired rounds: 16 streams 1.1x, 0.9x, 1.2x -> median 1.1x (met);
            # 64 streams 0.5x each round (missed)
            "seqserve": {
                "1": _http([1000.0], 0.3, 1.0, 300.0),
                "16": _http([1100.0, 900.0, 1200.0], 2.0, 9.0, 200.0),
                "64": _http([500.0, 500.0, 500.0], 8.0, 30.0, 250.0),
            },
            "empty": {
                "1": _http([3000.0], 0.25, 1.0, 100.0),
                "16": _http([5000.0, 5000.0, 5000.0], 1.0, 5.0, 90.0),
                "64": _http([5000.0, 5000.0, 5000.0], 4.0, 10.0, 90.0),
            },
            "mosec": {
                "16": _http([1000.0, 1000.0, 1000.0], 1.5, 4.0, 150.0),
                "64": _http([1000.0, 1000.0, 1000.0], 6.0, 9.0, 150.0),
            },
        },
        "cpu": {
            "seqserve": {
                "16": [{"cpu_us": 120.0, "loop_us": 100.0}],
                "64": [{"cpu_us": 200.0, "loop_us": 150.0}],
            },  # fmt: skip
            "empty": {"16": [{"cpu_us": 100.0}], "64": [{"cpu_us": 100.0}]},
        },
        "predict": {"rounds": [{"http": 95.0, "ort": 100.0, "ratio": 0.95}], "ratio": 0.95},
        "extras": {
            "bench_v2": {
                "status": "ok",
                "rows": [
                    {
                        "streams": 64,
                        "v1_steps_per_s": 1000.0,
                        "v2_steps_per_s": 800.0,
                        "v2_over_v1": 0.8,
                        "v1_p99_ms": 9.0,
                        "v2_p99_ms": 12.0,
                    },
                ],
            }
        },  # fmt: skip
        "ws": {"status": "ok", "seqserve": {"64": [{"rps": 26000.0}]}},
        "history": [
            {"history": 10, "stateful_p50_ms": 1.0, "stateless_p50_ms": 1.0},
            {"history": 10000, "stateful_p50_ms": 1.05, "stateless_p50_ms": 9.0},
        ],
        "rss": {"seqserve": {"per_session": 800.0, "sessions": 1000}},
        "baseline": {"rss_per_session": 700.0, "history_ratio": 1.0},
    }


def test_each_goal_gets_its_bound_and_verdict() -> None:
    found = {v.target: v.met for v in goals(_results())}
    assert found == {
        "v1 HTTP steps/s at 16 streams ≥ 1.0× Mosec + session dict": True,
        "v1 HTTP steps/s at 64 streams ≥ 1.0× Mosec + session dict": False,
        "server CPU a v1 step at 16 streams ≤ the floor's + 30 µs (in process)": True,
        "server CPU a v1 step at 64 streams ≤ the floor's + 30 µs (in process)": False,
        "p99 at 16 streams ≤ 2× the floor's": True,  # 9 / 5 = 1.8
        "p99 at 64 streams ≤ 2× the floor's": False,  # 30 / 10
        "p50 of a lone stream ≤ 1.5× the floor's": True,  # 0.3 / 0.25 = 1.2
        "V2 sequence steps at 64 streams ≥ 0.9× v1": False,
        "WebSocket ≥ 25,000 steps/s at 64 streams": True,
        "stateless binary V2 predict of [64, 100, F] ≥ 0.9× in-process ONNX Runtime": True,
        "no regression: step p50 at history 10,000 over history 10": True,
        "no regression: RSS per idle session": False,  # 800 B > 700 B x 1.05
    }


def test_mosec_ratio_is_the_median_of_paired_rounds() -> None:
    v = goals(_results())[0]
    assert "= 1.10×" in v.measured


def test_a_missed_goal_carries_its_profile_numbers_and_a_met_one_none() -> None:
    by_target = {v.target: v for v in goals(_results())}
    missed = by_target["v1 HTTP steps/s at 64 streams ≥ 1.0× Mosec + session dict"]
    assert "250 µs server CPU a step" in missed.why
    assert "Mosec: 150 µs server CPU a step" in missed.why
    assert by_target["v1 HTTP steps/s at 16 streams ≥ 1.0× Mosec + session dict"].why == ""
    lines = verdict_lines(_results())
    at = lines.index(next(ln for ln in lines if "at 64 streams ≥ 1.0× Mosec" in ln))
    assert lines[at + 1].strip().startswith("why: seqserve: 250 µs")


def test_a_peer_that_could_not_be_installed_is_not_measured_with_its_reason() -> None:
    results = _results()
    del results["http"]["mosec"]
    results["peers"] = {"mosec": {"status": "not measured", "reason": "pip: no network"}}
    v = goals(results)[0]
    assert v.met is None
    assert v.measured == "not measured: pip: no network"


def test_goals_without_figures_are_not_measured() -> None:
    found = goals({})
    assert all(v.met is None for v in found)
    assert len(found) == 12
