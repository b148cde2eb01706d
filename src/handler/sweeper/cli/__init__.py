"""`ecr-sweeper`: the Lambda's code on an operator's laptop, with the operator's AWS credentials.

    ecr-sweeper plan      [settings] [--json]          a dry run: what would go, and why
    ecr-sweeper sweep     [settings] [--json] [--yes]  the real run, after confirmation
    ecr-sweeper explain   REPOSITORY DIGEST [settings]  why one manifest is kept or deletable
    ecr-sweeper validate  [selection] [--json]          indexes missing children, dangling referrers
    ecr-sweeper audit     [settings] [--json]          what ECR's own lifecycle policies will expire
                                                       that is in use (exit 1 when anything is)

Settings are the fields of the Lambda's request, as flags (`--scope`, `--min-age-hours`, ...) or
from a request file (`--event FILE`, flags win), checked by `settings.load` exactly as the Lambda
checks them. The environment variables that configure the deployed function (SCOPE, PINS, ...) are
not read: a shell's stray `SCOPE` should not change what a sweep deletes. `dry_run` comes from the
command; a file's is checked, and one asking `sweep` for a dry run stops it (`settings_from`).

Reading a manifest is a pull in ECR: before its first read each command finds the operator among
the registry's pull-time update exclusions, and asks (or, without a terminal, stops naming
`--register-pull-time-exclusion` and `--accept-pull-time-updates`) when they are not one
(`cli.pull_times`).

Exit codes: 0 done; 1 failures (the report is not complete, something failed or is broken, a
repository pattern matched nothing, the manifest asked about is not there, the sweep was not
confirmed, or the output's reader went away); 2 bad usage, with what was wrong named.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from .. import pins
from ..settings import InvalidSettings
from . import commands, explaining, undo
from .parser import (
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    FLAGS,
    PROG,
    UsageError,
    build_parser,
    parse_arguments,
    settings_from,
)
from .pull_times import Declined
from .render import human_bytes
from .terminal import Interrupts, Progress

__all__ = [
    "EXIT_FAILURES",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FLAGS",
    "Interrupts",
    "Progress",
    "build_parser",
    "human_bytes",
    "main",
    "settings_from",
]

# Each command module names its own commands.
COMMANDS = {**commands.COMMANDS, **explaining.COMMANDS, **undo.COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_arguments(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    core = logging.getLogger("ecr_sweeper")
    if not core.handlers:
        # The decision log is for the Lambda's JSON logs; here the tables say the same.
        core.addHandler(logging.NullHandler())
    out, err = sys.stdout, sys.stderr
    try:
        code: int = COMMANDS[args.command](args, out, err)
        # A pipe is block-buffered: most of the report is still in the buffer. Write it here,
        # where a reader that went away is handled, not in Python's flush at exit.
        out.flush()
    except InvalidSettings as exc:  # settings_from names the flag or file; this is a fallback
        print(f"{PROG}: error: invalid setting {exc}", file=err)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    except pins.PinSourceError as exc:
        # Fail closed, as the Lambda does: without every pin, nothing is planned or deleted.
        print(f"{PROG}: {exc}", file=err)
        return EXIT_FAILURES
    except Declined:
        print("Not registered: nothing read.", file=err)
        return EXIT_FAILURES
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=err)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`ecr-sweeper plan --json | head`): stop quietly, as a pipeline
        # expects. A sweep that had not yet been confirmed has deleted nothing.
        _discard_stdout()
        return EXIT_FAILURES
    return code


def _discard_stdout() -> None:
    """Point standard output at /dev/null: Python flushes it once more at exit, and would fail
    on the closed pipe again with an "Exception ignored" message."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (captured in a test, say): nothing to flush
        pass


if __name__ == "__main__":
    raise SystemExit(main())
