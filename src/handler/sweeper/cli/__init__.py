"""`ecr-sweeper`: the Lambda's code on an operator's laptop, with the operator's AWS credentials.

    ecr-sweeper plan      [settings] [--json]          a dry run: what would go, and why
    ecr-sweeper sweep     [settings] [--json] [--yes]  the real run, after confirmation
    ecr-sweeper explain   REPOSITORY DIGEST [settings]  why one manifest is kept or deletable
    ecr-sweeper validate  [selection] [--json]          indexes missing children, dangling referrers

Settings are the fields of the Lambda's request, as flags (`--scope`, `--min-age-hours`, ...) or
from a request file (`--event FILE`, flags win), checked by `settings.load` exactly as the Lambda
checks them. The environment variables that configure the deployed function (SCOPE, PINS, ...) are
not read: a shell's stray `SCOPE` should not change what a sweep deletes. `dry_run` comes from the
command, never from the file.

Exit codes: 0 done; 1 failures (the report is not complete, something failed or is broken, the
manifest asked about is not there, or the sweep was not confirmed); 2 bad usage, with what was
wrong named.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from .. import pins
from ..settings import InvalidSettings
from .commands import COMMANDS
from .parser import (
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    FLAGS,
    PROG,
    UsageError,
    build_parser,
    settings_from,
)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    core = logging.getLogger("ecr_sweeper")
    if not core.handlers:
        # The decision log is for the Lambda's JSON logs; here the tables say the same.
        core.addHandler(logging.NullHandler())
    out, err = sys.stdout, sys.stderr
    try:
        code: int = COMMANDS[args.command](args, out, err)
    except InvalidSettings as exc:
        field = exc.field.split("[")[0]
        flag = f" ({FLAGS[field]})" if field in FLAGS else ""
        print(f"{PROG}: error: invalid setting {exc}{flag}", file=err)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    except pins.PinSourceError as exc:
        # Fail closed, as the Lambda does: without every pin, nothing is planned or deleted.
        print(f"{PROG}: {exc}", file=err)
        return EXIT_FAILURES
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=err)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    raise SystemExit(main())
