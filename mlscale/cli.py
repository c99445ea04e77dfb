"""The ``mlscale`` command line.

mlscale run FILE.yaml [--report DIR]      run a resource on this machine
mlscale validate FILE.yaml...             validate resources offline
mlscale explain FILE.yaml...              what a resource asks for, field by field
mlscale crds [--check]                    generate (or check) crds/ and the chart's copy
mlscale operator [KOPF OPTIONS]           start the operator (kopf run -m controllers)
mlscale load URL --trace TRACE            drive an inference endpoint with a load trace
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlscale import __version__
from mlscale.local import LocalRunOptions
from mlscale.resources import LoadedResource, ResourceFileError, check_resources, load_resources


def _checked(file: str) -> tuple[list[LoadedResource], bool]:
    """The valid resources of a file, its problems printed to stderr; and whether it had any."""
    try:
        loaded, errors = check_resources(Path(file))
    except ResourceFileError as exc:
        loaded, errors = [], exc.lines
    for line in errors:
        print(line, file=sys.stderr)
    return loaded, bool(errors)


def _cmd_validate(args: argparse.Namespace) -> int:
    failed = False
    for file in args.files:
        loaded, bad = _checked(file)
        failed = failed or bad
        for item in loaded:
            print(f"{file}: {item.info.kind}/{item.name}: valid")
    return 1 if failed else 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from mlscale.explain import explain_lines

    status = 0
    for file in args.files:
        loaded, bad = _checked(file)
        status = 1 if bad else status
        for item in loaded:
            model = type(item.resource)
            print(f"{file}: {item.info.kind}/{item.name} (engine {item.info.engine})")
            print("  " + " ".join((model.__doc__ or "").split()))
            resource: Any = item.resource
            for line in explain_lines(resource.spec, prefix="spec."):
                print(f"  {line}")
    return status


def _cmd_crds(args: argparse.Namespace) -> int:
    from mlscale.crdgen import expected_files, write_all
    from mlscale.reference import readme_is_current, update_readme

    root = Path(args.root)
    readme = root / "README.md"
    if args.check:
        stale = [p for p, text in expected_files(root).items() if not p.exists() or p.read_text() != text]
        if readme.exists() and not readme_is_current(readme):
            stale.append(readme)
        for path in stale:
            print(f"{path}: differs from the models; run `make crds`", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all(root):
        print(path)
    if readme.exists() and update_readme(readme):
        print(readme)
    return 0


def _unwind_on_sigterm() -> None:
    """Make SIGTERM (``kill``, ``timeout``, a CI runner) unwind the run as Ctrl-C does.

    Python's default for SIGTERM ends the process at once: the Spark master, worker, driver and
    executors, or the model servers and router, that the engine started would outlive it. Raised
    as ``SystemExit(143)``, it runs the engine's ``finally`` blocks, which stop them; a second
    SIGTERM ends the process at once.
    """

    def unwind(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, unwind)


def _cmd_run(args: argparse.Namespace) -> int:
    _unwind_on_sigterm()
    path = Path(args.file)
    try:
        loaded = load_resources(path)
    except ResourceFileError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return 2
    status = 0
    for item in loaded:
        report_dir = Path(args.report) if args.report else Path("reports") / f"{item.info.singular}-{item.name}"
        if len(loaded) > 1 and args.report:
            report_dir = report_dir / item.name
        options = LocalRunOptions(
            report_dir=report_dir,
            load=args.load,
            duration_s=args.duration,
            uncontrolled=args.uncontrolled,
            quiet=args.quiet,
            source=path,
            extra={"workers": str(args.workers)} if args.workers else {},
        )
        try:
            module = importlib.import_module(f"{item.info.engine}.local")
        except ModuleNotFoundError as exc:
            print(f"{path}: the {item.info.engine} engine cannot run here: {exc}", file=sys.stderr)
            return 2
        run_local: Callable[[object, LocalRunOptions], int] = module.run_local
        try:
            status = max(status, run_local(item.resource, options))
        except (KeyboardInterrupt, SystemExit) as exc:
            code = 130 if isinstance(exc, KeyboardInterrupt) else exc.code
            if code not in (130, 143):
                raise
            cause = "interrupted (Ctrl-C)" if code == 130 else "stopped (SIGTERM)"
            print(
                f"\n{item.info.kind} {item.name}: {cause}; the processes it started were stopped. "
                f"No report was written; its logs so far are in {report_dir}",
                file=sys.stderr,
            )
            return code
    return status


def _cmd_operator(args: argparse.Namespace) -> int:
    argv = [sys.executable, "-m", "kopf", "run", "-m", "controllers", *args.kopf_args]
    if not any(a in ("--all-namespaces", "-A") or a.startswith(("--namespace", "-n")) for a in args.kopf_args):
        argv.insert(6, "--all-namespaces")
    os.execv(sys.executable, argv)
    return 0  # pragma: no cover - execv does not return


def _cmd_load(args: argparse.Namespace, rest: list[str]) -> int:
    try:
        module = importlib.import_module("roma.loadgen")
    except ModuleNotFoundError as exc:
        print(f"the load generator is not available: {exc}", file=sys.stderr)
        return 2
    main: Callable[[list[str]], int] = module.main
    return main(rest)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mlscale``."""
    parser = argparse.ArgumentParser(
        prog="mlscale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"mlscale {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a resource on this machine and write its report")
    run.add_argument("file", help="resource YAML (the same file you would kubectl apply)")
    run.add_argument("--report", help="report directory (default: reports/<kind>-<name>)")
    run.add_argument("--load", help="InferenceService: load trace, e.g. 'step:5:20@30' or a CSV file")
    run.add_argument("--duration", type=float, help="InferenceService: seconds of load")
    run.add_argument(
        "--workers",
        type=int,
        default=0,
        help="FederatedTraining: client worker processes on 127.0.0.1 (0 simulates clients in the TFF process)",
    )
    run.add_argument(
        "--uncontrolled", action="store_true", help="run without cgroup limits where cgroups are not writable"
    )
    run.add_argument("--quiet", action="store_true", help="no live progress line")
    run.set_defaults(func=_cmd_run)

    validate = sub.add_parser("validate", help="validate resource files offline")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=_cmd_validate)

    explain = sub.add_parser("explain", help="show what a resource asks for, field by field")
    explain.add_argument("files", nargs="+")
    explain.set_defaults(func=_cmd_explain)

    crds = sub.add_parser("crds", help="generate crds/ and the chart's CRDs from the models")
    crds.add_argument("--check", action="store_true", help="fail when the committed files differ")
    crds.add_argument("--root", default=".", help="repository root")
    crds.set_defaults(func=_cmd_crds)

    operator = sub.add_parser("operator", help="start the operator (kopf run -m controllers)")
    operator.add_argument("kopf_args", nargs=argparse.REMAINDER, help="options passed to kopf run")
    operator.set_defaults(func=_cmd_operator)

    sub.add_parser(
        "load", help="drive an inference endpoint with a load trace (see mlscale load --help)", add_help=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mlscale``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["load"]:
        return _cmd_load(argparse.Namespace(), argv[1:])
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except BrokenPipeError:
        # The reader went away (`mlscale explain … | head`): stop quietly, as Unix tools do.
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
