"""The ``netviz`` command line: ``run``, ``report`` (and more as sections add them).

User errors (:class:`NetvizError`) print one line, ``netviz: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from netviz.errors import NetvizError


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", default=[], type=Path, metavar="FILE",
                        help="TOML file layered over config/default.toml (repeatable)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="override one config key, e.g. --set saliency.num_shown=3 (repeatable)")
    parser.add_argument("--data-dir", help="folder with imagenet_val_25.npz and weights/ (default: $NETVIZ_DATA_DIR)")
    parser.add_argument("--images", help="a folder of your own images with labels.json or labels.csv")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N (default: config run.device)")


def effective_config(args: argparse.Namespace) -> dict:
    """default.toml, then ``--config`` overlays, then ``--set`` overrides, then ``--data-dir/--images/--device``."""
    from netviz.config import load_config

    shortcuts = {key: value for key, value in (("data_dir", args.data_dir), ("images", args.images), ("device", args.device)) if value}
    return load_config(args.config, args.overrides, extra={"run": shortcuts} if shortcuts else None)


def cmd_run(args: argparse.Namespace) -> int:
    from netviz.experiments.runner import run_experiments

    config = effective_config(args)
    run_experiments(config, Path("."), only=args.only or None, force=args.force)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from netviz.report.render import render_report

    render_report(Path("."), pdf=not args.no_pdf)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netviz", description="Look inside image classifiers: run the lab, render the report.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the experiments (only those whose inputs changed)")
    _config_arguments(run)
    run.add_argument("--only", action="append", metavar="SECTION", help="run only this section (repeatable)")
    run.add_argument("--force", action="append", metavar="SECTION", help="re-run this section even if cached ('all' for every one)")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="render report/report.html and report/report.pdf from stored results")
    report.add_argument("--no-pdf", action="store_true", help="write report.tex but do not run latexmk")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NetvizError as err:
        print(f"netviz: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netviz: interrupted; earlier results are intact, run again to finish", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
