"""``python -m proof [--quick] [--only PART,...] [--json FILE] [--server gunicorn|waitress]``

Runs the proof parts against a real redis-server and a real WSGI server on
loopback and prints the figures table (Markdown) to stdout, progress to
stderr. Exit status 0 only if every figure meets its bar.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import typing as t

from .figures import Figure, table

PARTS = ("contention", "lifecycle", "redirects", "parsers", "fuzz", "faults")


def run(
    parts: t.Sequence[str], *, quick: bool, server: str = "gunicorn", fuzz_seconds: float | None = None
) -> tuple[list[Figure], t.Any]:
    """Run ``parts`` (then the canary scan) and return the figures and the
    lab (closed)."""
    # every part, first: each registers what the lab's server must serve
    # (proof.registry), and the server starts with the first part that needs it
    from . import canary as canary_part
    from . import contention, faults, lifecycle, parsers, redirects  # noqa: F401
    from .canary import CapturingHandler
    from .harness import Lab, log

    capture = CapturingHandler()
    root = logging.getLogger()
    root.addHandler(capture)
    package_logger = logging.getLogger("sso_middleware")
    old_level = package_logger.level
    package_logger.setLevel(logging.DEBUG)
    lab = Lab(quick=quick, server_kind=server)
    figures: list[Figure] = []
    try:
        for part in parts:
            started = time.monotonic()
            if part == "contention":
                from .contention import prove
            elif part == "lifecycle":
                from .lifecycle import prove
            elif part == "redirects":
                from .redirects import prove
            elif part == "parsers":
                from .parsers import prove
            elif part == "fuzz":
                from .parsers import prove_fuzz as prove
            elif part == "faults":
                from .faults import prove
            else:
                raise SystemExit(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
            if part == "fuzz" and fuzz_seconds is not None:
                figures.extend(prove(lab, seconds=fuzz_seconds))
            else:
                figures.extend(prove(lab))
            log(f"{part}: {time.monotonic() - started:.1f} s")
    finally:
        root.removeHandler(capture)
        package_logger.setLevel(old_level)
        lab.close()  # scans every Redis before stopping it
    lab.scan_logs()
    lab.canary.scan_text("\n".join(capture.lines), "proof process log records")
    figures.append(canary_part.figure(lab.canary))
    return figures, lab


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proof", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized runs (under a minute)")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts (default: all of {', '.join(PARTS)})"
    )
    parser.add_argument("--server", choices=("gunicorn", "waitress"), default="gunicorn")
    parser.add_argument(
        "--fuzz-seconds",
        type=float,
        default=None,
        help="atheris seconds per harness (default 30, 1 with --quick)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every figure and its data as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    started = time.monotonic()
    figures, lab = run(parts, quick=args.quick, server=args.server, fuzz_seconds=args.fuzz_seconds)
    elapsed = time.monotonic() - started
    print(f"\nProof figures ({'quick' if args.quick else 'full'} run, {args.server}, {elapsed:.0f} s)\n")
    print(table(figures))
    failed = [f for f in figures if not f.ok]
    print(f"\n{len(figures) - len(failed)}/{len(figures)} figures meet their bar.")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "quick": args.quick,
                    "server": args.server,
                    "seconds": elapsed,
                    "figures": [f.__dict__ for f in figures],
                },
                out,
                indent=2,
                default=str,
            )
    if args.keep or failed:
        print(f"logs: {lab.workdir}", file=sys.stderr)
    else:
        lab.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
