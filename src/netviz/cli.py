"""The ``netviz`` command line: ``run``, ``report``, ``expected``, ``grade``, ``bench`` (and more as sections add them).

User errors (:class:`NetvizError`) and faults of the environment (a read-only folder, a full disk) print one line,
``netviz: error: ...``, and exit with status 2. Anything else is a bug in netviz: its traceback is printed, then a
line saying so, and the exit status is 1. ``grade`` exits with status 1 when the build fails the grading.
"""

from __future__ import annotations

import argparse
import errno
import sys
import traceback
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
    parser.add_argument("--executor", choices=["local", "ray"],
                        help="where jobs run: this process, or Ray (run.ray_address; default: config run.executor)")


def effective_config(args: argparse.Namespace) -> dict:
    """default.toml, then ``--config`` overlays, then ``--set`` overrides, then ``--data-dir/--images/--device/--executor``."""
    from netviz.config import load_config

    shortcuts = {key: value for key, value in (("data_dir", args.data_dir), ("images", args.images), ("device", args.device),
                                                            ("executor", getattr(args, "executor", None))) if value}
    return load_config(args.config, args.overrides, extra={"run": shortcuts} if shortcuts else None)


def cmd_run(args: argparse.Namespace) -> int:
    from netviz.experiments.runner import plan, run_experiments

    config = effective_config(args)
    if args.dry_run:
        for section, why in plan(config, Path("."), only=args.only or None, force=args.force).items():
            print(f"{section}: {'would re-run: ' + '; '.join(why) if why else 'cached'}")
        return 0
    run_experiments(config, Path("."), only=args.only or None, force=args.force)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from netviz.report.render import render_report

    render_report(Path("."), pdf=not args.no_pdf, force=args.force)
    return 0


def cmd_expected(args: argparse.Namespace) -> int:
    import time

    from netviz.config import load_config
    from netviz.sections import SECTIONS
    from netviz.grading import snapshot, snapshot_source
    from netviz.variation import WORK_DIR, build_variants, parse_names, record

    names = parse_names(args.variants)
    build = snapshot_source(Path("."), args.out, args.allow_partial)  # refuse a bad --out before building anything
    variation = None
    if names:
        started = time.perf_counter()
        config = build.provenance.get("config")
        if not config:
            raise NetvizError("results/provenance.json records no config; run `netviz run` again first")
        sections = [s for s in SECTIONS if s in build.sections]
        built = build_variants(config, Path(WORK_DIR), names, jobs=args.jobs, only=sections)
        variation = record(Path("."), built, load_config()["grade"], time.perf_counter() - started)
        print(f"variants: {variation['moved']['metrics']} metric(s) and {variation['moved']['figures']} figure(s) "
              f"moved across {len(built)} variant build(s) ({variation['measured_s']:.0f} s)")
    snapshot(Path("."), args.out, allow_partial=args.allow_partial, variation=variation)
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from netviz.config import load_config
    from netviz.grading import run_grade

    config = load_config(args.config, args.overrides)
    if args.builds:
        from netviz.class_grades import grade_class

        rows = grade_class(args.expected, args.builds, config["grade"], args.out)
        return 0 if all(r.status == "pass" for r in rows) else 1
    html = None if args.html == "" else Path(args.html) if args.html else Path(args.actual) / "report" / "grade.html"
    result = run_grade(args.expected, args.actual, config["grade"], html)
    return 0 if result.passed else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from netviz.bench import run_bench

    run_bench(effective_config(args), Path("."))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netviz", description="Look inside image classifiers: run the lab, render the report.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the experiments (only those whose inputs changed)")
    _config_arguments(run)
    run.add_argument("--only", action="append", metavar="SECTION", help="run only this section (repeatable)")
    run.add_argument("--force", action="append", metavar="SECTION", help="re-run this section even if cached ('all' for every one)")
    run.add_argument("--dry-run", action="store_true", help="say what would re-run and why, without running anything")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="render report/report.html and report/report.pdf from stored results")
    report.add_argument("--no-pdf", action="store_true", help="write report.tex but do not run latexmk")
    report.add_argument("--force", action="store_true", help="render even when nothing it reads has changed")
    report.set_defaults(func=cmd_report)

    expected = sub.add_parser("expected", help="snapshot this build (figures, metrics, provenance) as an expected set for grading")
    expected.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder of the expected set (replaced)")
    expected.add_argument("--allow-partial", action="store_true", help="accept a build with missing or out-of-date sections")
    expected.add_argument("--variants", metavar="NAMES", default="all",
                          help="variant builds that measure the tolerances: all (default), none, or names separated by commas")
    expected.add_argument("--jobs", type=int, default=0, help="variant builds run at once (default: one per CPU core)")
    expected.set_defaults(func=cmd_expected)

    grade = sub.add_parser("grade", help="compare a build with an expected set: SSIM per figure and panel, metrics "
                                         "within tolerances, a verdict per question; exit status 1 on failure")
    grade.add_argument("--expected", required=True, type=Path, metavar="DIR", help="an expected set (`netviz expected`)")
    grade.add_argument("--actual", default=Path("."), type=Path, metavar="DIR", help="the build to grade (default: here)")
    grade.add_argument("builds", nargs="*", type=Path, metavar="BUILD",
                       help="grade many builds (a class) at once: one table, grades.csv and grades.html in --out")
    grade.add_argument("--out", type=Path, default=Path("grades"), metavar="DIR",
                       help="where a class's table and grade pages go (default: grades/)")
    grade.add_argument("--html", metavar="FILE", help="where to write the page (default: ACTUAL/report/grade.html; '' for none)")
    grade.add_argument("--config", action="append", default=[], type=Path, metavar="FILE",
                       help="TOML file with a [grade] table of tolerances (layered over config/default.toml)")
    grade.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                       help="override a grading key, e.g. --set grade.ssim_min=0.9")
    grade.set_defaults(func=cmd_grade)

    bench = sub.add_parser("bench", help="time each experiment's work: batched vs a per-image loop vs Captum/torchattacks; "
                                         "writes results/bench/ and figures/bench/ (the report's speed appendix)")
    _config_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    return parser


# Faults of the machine rather than of netviz: what to do about each.
_ENVIRONMENT = {
    errno.ENOSPC: "free some space and run again",
    errno.EDQUOT: "free some space (disk quota) and run again",
    errno.EROFS: "the file system is read-only; run in a writable folder",
    errno.EACCES: "check the folder's permissions or run in a writable folder",
    errno.EPERM: "check the folder's permissions or run in a writable folder",
    errno.EIO: "the disk reported an I/O error; check it",
}


def environment_message(err: OSError) -> str | None:
    """One line for an OS fault that is the machine's (full disk, read-only or forbidden folder); else None."""
    if err.errno not in _ENVIRONMENT:
        return None
    where = f"'{err.filename}': " if err.filename else ""
    return f"{where}{err.strerror or errno.errorcode.get(err.errno, err.errno)}; {_ENVIRONMENT[err.errno]} " \
           "(earlier results are intact)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NetvizError as err:
        print(f"netviz: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        message = environment_message(err)
        if message is None:
            return _bug()
        print(f"netviz: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netviz: interrupted; earlier results are intact, run again to finish", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - the last resort: every expected error is handled above
        return _bug()


def _bug() -> int:
    """Show the exception being handled as the bug it is: its traceback, then one line saying so; exit status 1."""
    traceback.print_exc()
    print("netviz: internal error: the traceback above is a bug in netviz, not a mistake of yours; "
          "please report it with the command you ran", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
