"""The latency-percentile plot of RESULTS.md: redemption against its
baselines, in process (per call) and end to end (per HTTP request).

    python -m benchmarks.plot results.json latency.png

(run.py calls :func:`plot` itself with ``--plot``.)
"""

from __future__ import annotations

import json
import sys
import typing as t

from .loadgen import PERCENTILES

INPROCESS_PERCENTILES = (50, 90, 99, 99.9)

#: in-process subjects, in legend order; redemption first
INPROCESS = (
    "redemption",
    "raw GETDEL",
    "mint (create_sso_token)",
    "raw SET EX NX",
    "session request",
    "raw GET",
    "mint (admin API)",
)
E2E = ("e2e sso", "e2e redirect", "e2e flask_sso", "e2e flask_handrolled", "e2e token", "e2e authlib")


def percentile(samples: t.Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def plot(latencies: t.Mapping[str, t.Sequence[float]], path: str, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    xs = list(range(len(INPROCESS_PERCENTILES)))
    for name in INPROCESS:
        if latencies.get(name):
            ys = [percentile(latencies[name], p) for p in INPROCESS_PERCENTILES]
            bold = name == "redemption"
            left.plot(
                xs,
                ys,
                marker="o",
                linewidth=3 if bold else 1.5,
                linestyle="-" if not name.startswith("raw") else "--",
                label=name,
            )
    left.set_xticks(xs, [f"p{p:g}" for p in INPROCESS_PERCENTILES])
    left.set_yscale("log")
    left.set_ylabel("latency per call (µs, log scale)")
    left.set_title("In process: direct WSGI / Python calls (dashed: raw Redis)")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)

    xs = list(range(len(PERCENTILES)))
    for name in E2E:
        if latencies.get(name):
            ys = [v / 1000 for v in latencies[name]]
            base = name in ("e2e redirect", "e2e flask_handrolled", "e2e authlib")
            right.plot(
                xs,
                ys,
                marker="o",
                linestyle="--" if base else "-",
                linewidth=3 if name == "e2e sso" else 1.5,
                label=name.removeprefix("e2e "),
            )
    right.set_xticks(xs, [f"p{p:g}" for p in PERCENTILES])
    right.set_yscale("log")
    right.set_ylabel("latency per HTTP request (ms, log scale)")
    right.set_title("End to end: gunicorn, 2 sync workers (dashed: baselines)")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    with open(sys.argv[1]) as results:
        data = json.load(results)
    plot(data["latencies"], sys.argv[2])
