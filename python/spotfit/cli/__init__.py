"""The ``spotfit`` command line: localize, render, convert, info, simulate, demo, classify (+ contributed commands).

Exit codes: 0 success; 2 bad input or usage (unknown option, bad value, conflicting options, missing/corrupt/
truncated movie, a directory where a file is expected); 1 any other failure; 130 interrupted (Ctrl-C). Errors
are one line on stderr; ``spotfit --debug COMMAND ...`` shows the traceback instead. Output files are
written atomically at the end, so a failed or interrupted run leaves no partial output file.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from .common import USAGE_ERRORS, Parser, UsageError

# The modules that add commands, in --help order. Each defines ``register(subparsers)`` that adds its
# parser(s) with ``set_defaults(func=handler)``; ``handler(args) -> int`` is the exit code. Append contributed
# modules here (imported at start-up; one that fails to import is skipped, see --debug).
SUBCOMMAND_MODULES = [
    "spotfit.cli.localize",
    "spotfit.cli.tables",
    "spotfit.cli.movies",
    "spotfit.cli.classify",
    "spotfit.cli.drift",
    "spotfit.cli.postprocess",
    "spotfit.cli.calibrate3d",
]

__all__ = ["SUBCOMMAND_MODULES", "UsageError", "build_parser", "main"]


def build_parser(debug: bool = False) -> argparse.ArgumentParser:
    """The ``spotfit`` argument parser with the commands of every module in :data:`SUBCOMMAND_MODULES`.

    Parameters
    ----------
    debug : bool
        Say on stderr which modules could not be imported (their commands are left out).
    """
    parser = Parser(prog="spotfit", description="Find and measure fluorescent spots in SMLM movies.",
                    epilog="Run 'spotfit COMMAND --help' for a command's options. Exit codes: 0 ok, "
                           "1 failure, 2 bad input or usage, 130 interrupted.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if debug:
                print(f"spotfit: skipping the commands of {name}: {exc}", file=sys.stderr)
            continue
        module.register(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as ``spotfit: warning: ...``, one line each, without the source line (--debug keeps Python's)."""
    text = " ".join(str(message).split())
    print(f"spotfit: warning: {text}", file=sys.stderr if file is None else file)


def main(argv=None) -> int:
    """Run the ``spotfit`` command line; returns the exit code (also for --help and usage errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    saved = warnings.showwarning
    if "--debug" not in argv:
        warnings.showwarning = _one_line_warning
    try:
        return _run(argv)
    finally:
        warnings.showwarning = saved


def _run(argv) -> int:
    debug = "--debug" in argv
    try:
        parser = build_parser(debug)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
            return exc.code if isinstance(exc.code, int) else 2
        if args.version:
            import spotfit
            print(spotfit.__version__)
            return 0
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("spotfit: interrupted; no output written", file=sys.stderr)
        return 130
    except SystemExit as exc:  # a command's `raise SystemExit("message")`
        if isinstance(exc.code, int) or exc.code is None:
            return exc.code or 0
        print(f"spotfit: error: {exc.code}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` & co.: not an error (Python docs' recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the command line reports every failure as one line
        if debug:
            raise
        code = 2 if isinstance(exc, USAGE_ERRORS) else 1
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "" if code == 2 else " (run with --debug for the traceback)"
        print(f"spotfit: error: {msg}{hint}", file=sys.stderr)
        return code
