"""What the command prints: tables, totals, problems, failures, JSON."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TextIO

from ..audit import Hazard
from ..explain import short
from ..model import DIGEST_PATTERN, Decision, Image, Reason, Verdict
from ..run import NO_REPOSITORY_MATCHED, Failure, Report, RepositoryRun
from ..validate import Problem
from .parser import SHOW_ALL, SHOW_DELETIONS

_DIGEST_ANYWHERE = re.compile(DIGEST_PATTERN)
_REASON_ORDER = {reason: i for i, reason in enumerate(Reason)}


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "?"
    seconds = (now - when).total_seconds()
    if seconds < 3600:
        return f"{max(0, int(seconds // 60))}m"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def ago(when: datetime, now: datetime) -> str:
    """`20 min ago`, `5 hours ago`, `3 days ago`: for people; the JSON and the log keep ISO."""
    seconds = (now - when).total_seconds()
    if seconds < 60:
        return "just now" if seconds > -60 else f"at {when.isoformat(timespec='seconds')}"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 48 * 3600:
        return f"{counted(int(seconds // 3600), 'hour')} ago"
    return f"{counted(int(seconds // 86400), 'day')} ago"


def _when(decision: Decision, image: Image | None) -> tuple[str, datetime] | None:
    """The time a decision's cause is (the run logs it in ISO), and what happened then."""
    if image is None:
        return None
    if decision.reason is Reason.YOUNG and image.pushed_at is not None:
        if image.activated_at is not None and image.activated_at > image.pushed_at:
            return "restored", image.activated_at
        return "pushed", image.pushed_at
    if decision.reason is Reason.PULLED and image.last_pulled is not None:
        return "pulled", image.last_pulled
    return None


def readable(decision: Decision, image: Image | None, now: datetime) -> Decision:
    """The decision with a time cause as how long ago, for `explain`'s sentence (`within the
    grace period (pushed 20 min ago)`); the JSON keeps the ISO time."""
    when = _when(decision, image)
    return decision if when is None else replace(decision, cause=ago(when[1], now))


def cause_cell(decision: Decision, image: Image | None, now: datetime) -> str:
    """The table's CAUSE: `pushed 20 min ago` rather than a timestamp, digests shortened."""
    when = _when(decision, image)
    return shorten(decision.cause) if when is None else f"{when[0]} {ago(when[1], now)}"


def pushed(image: Image, now: datetime) -> str:
    if image.pushed_at is None:
        return "unknown"
    return f"{image.pushed_at.isoformat(timespec='seconds')} ({age(image.pushed_at, now)} ago)"


def shorten(text: str) -> str:
    """Every full digest in `text` cut to its short form, so a table stays readable."""
    return _DIGEST_ANYWHERE.sub(lambda match: short(match.group(0)), text)


def verdict_of(repo: RepositoryRun, decision: Decision) -> str:
    if decision.verdict is Verdict.KEEP:
        return "keep"
    if decision.digest in repo.deleted:
        return "deleted"
    if decision.digest in repo.already_gone:
        return "gone"
    return "delete"


def _table(out: TextIO, header: Sequence[str], rows: list[list[str]], right: set[int]) -> None:
    widths = [max(len(row[i]) for row in [list(header), *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  " + "  ".join(padded).rstrip()

    print(line(header), file=out)
    for row in rows:
        print(line(row), file=out)


def by_name(repos: Sequence[RepositoryRun]) -> list[RepositoryRun]:
    """Repositories in name order: the run's order rotates from night to night, the output's
    does not."""
    return sorted(repos, key=lambda r: r.repository)


def shown(repo: RepositoryRun, show: str) -> list[Decision]:
    """The decisions `--show` asks for, in the table's order: the planned deletions first, in
    the order they happen (kept by the sweep included), then, with `all`, what is kept, roots
    first (tags, pins, grace period...), then what they keep."""
    order = {d: i for i, d in enumerate(repo.planned)}
    if show == SHOW_DELETIONS:
        return [repo.decisions[d] for d in repo.planned if d in repo.decisions]
    return sorted(
        repo.decisions.values(),
        key=lambda d: (
            d.digest not in order,
            order.get(d.digest, 0),
            _REASON_ORDER[d.reason],
            d.cause,
            d.digest,
        ),
    )


def kept_by_reason(repo: RepositoryRun) -> list[tuple[str, int]]:
    """What a repository keeps, by reason, most first."""
    kept = Counter(d.reason.value for d in repo.decisions.values() if d.verdict is Verdict.KEEP)
    return sorted(kept.items(), key=lambda item: (-item[1], item[0]))


def print_tables(
    out: TextIO, repos: Sequence[RepositoryRun], now: datetime, show: str = SHOW_ALL
) -> None:
    """One table per repository, in name order (`shown` says which rows). With `deletions`, a
    repository with nothing to delete has no table (the summary counts it), and the kept ones
    are a count by reason under the table."""
    for repo in by_name(repos):
        decisions = shown(repo, show)
        if show == SHOW_DELETIONS and not decisions:
            continue
        deleting = sum(1 for d in repo.decisions.values() if d.verdict is Verdict.DELETE)
        done = "deleted" if repo.deleted or repo.already_gone else "to delete"
        held = f" (held by the {repo.held_by})" if repo.held_by and deleting else ""
        print(
            f"{repo.repository}: {counted(repo.manifests, 'manifest')}, {deleting} {done}{held}, "
            f"{len(repo.decisions) - deleting} kept",
            file=out,
        )
        rows = [
            [
                d.kind.value,
                short(d.digest),
                age(repo.images[d.digest].pushed_at, now) if d.digest in repo.images else "?",
                human_bytes(d.size),
                verdict_of(repo, d),
                d.reason.value,
                cause_cell(d, repo.images.get(d.digest), now),
            ]
            for d in decisions
        ]
        if rows:
            _table(
                out, ["KIND", "DIGEST", "AGE", "SIZE", "VERDICT", "REASON", "CAUSE"], rows, {2, 3}
            )
        if show == SHOW_DELETIONS:
            kept = kept_by_reason(repo)
            if kept:
                print("  kept: " + ", ".join(f"{n} {reason}" for reason, n in kept), file=out)
        print(file=out)


def print_summary(out: TextIO, report: Report) -> None:
    """One row per repository, the most bytes freed first: manifests, planned deletions (and,
    after a real run, confirmed ones), bytes nominal and freed, kept, hazards."""
    summaries = sorted(
        report.repositories,
        key=lambda r: (-(r.planned_bytes_freed or 0), -r.planned_bytes, r.repository),
    )
    if not summaries:
        return
    real = not report.dry_run and any(r.deleted or r.delete_failures for r in summaries)
    header = ["REPOSITORY", "MANIFESTS", "DELETE", "NOMINAL", "FREED", "KEPT", "HAZARDS"]
    if real:
        header.insert(3, "DELETED")
    rows = []
    for r in summaries:
        row = [
            r.repository,
            str(r.manifests),
            str(r.planned),
            human_bytes(r.planned_bytes),
            "?" if r.planned_bytes_freed is None else human_bytes(r.planned_bytes_freed),
            str(sum(r.kept.values())),
            str(len(r.hazards)),
        ]
        if real:
            row.insert(3, str(r.deleted))
        rows.append(row)
    _table(out, header, rows, set(range(1, len(header))))
    print(file=out)


CSV_COLUMNS = (
    "repository",
    "digest",
    "kind",
    "verdict",
    "reason",
    "cause",
    "size",
    "pushed",
    "tags",
    "held_by",
    "deleted",
)


def write_csv(out: TextIO, repos: Sequence[RepositoryRun], show: str) -> None:
    """One row per decision (`shown`), repositories in name order: the JSON's fields, the cause
    and the times in full, tags separated by spaces (a tag holds none)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for repo in by_name(repos):
        for d in shown(repo, show):
            image = repo.images.get(d.digest)
            held = repo.held_by if repo.held_by and d.verdict is Verdict.DELETE else ""
            writer.writerow(
                [
                    repo.repository,
                    d.digest,
                    d.kind.value,
                    d.verdict.value,
                    d.reason.value,
                    d.cause,
                    d.size,
                    image.pushed_at.isoformat() if image and image.pushed_at else "",
                    " ".join(image.tags) if image else "",
                    held,
                    "true" if d.digest in repo.deleted else "false",
                ]
            )


def freed(report: Report, *, deleted: bool = False) -> str:
    """`1.2 GiB freed, 4.3 GiB nominal` for the planned (or deleted) manifests: the blobs they
    alone used, and the sum of their imageSizeInBytes. Where a repository's figure is unknown the
    freed bytes are a lower bound, and say so."""
    totals = report.deleted if deleted else report.planned
    unknown = sum(
        1
        for r in report.repositories
        if (r.deleted_bytes_freed if deleted else r.planned_bytes_freed) is None
    )
    nominal = f"{human_bytes(totals.bytes)} nominal"
    if not unknown:
        return f"{human_bytes(totals.bytes_freed)} freed, {nominal}"
    where = counted(unknown, "repository", "repositories")
    if not totals.bytes_freed:
        return f"bytes freed not known in {where}, {nominal}"
    return f"at least {human_bytes(totals.bytes_freed)} freed (not known in {where}), {nominal}"


def print_totals(out: TextIO, report: Report, *, after_sweep: bool = False) -> None:
    planned, deleted = report.planned, report.deleted
    print(
        f"{counted(len(report.repositories), 'repository', 'repositories')}, "
        f"{counted(report.manifests, 'manifest')}.",
        file=out,
    )
    breaker = report.circuit_breaker
    held = f" (held: over max_deletions {breaker.max_deletions})" if breaker else ""
    if report.dry_run:
        print(
            f"Would delete {counted(planned.manifests, 'manifest')}{held}: {freed(report)} "
            "(dry run: nothing deleted).",
            file=out,
        )
    elif after_sweep:
        print(
            f"Deleted {deleted.manifests} of {counted(planned.manifests, 'planned manifest')}"
            f"{held}: {freed(report, deleted=True)}.",
            file=out,
        )
    else:
        print(
            f"Plan: delete {counted(planned.manifests, 'manifest')}{held}: {freed(report)}.",
            file=out,
        )
    print(
        "Freed: the layers and configs no kept manifest uses; nominal: the sum of "
        "imageSizeInBytes (SIZE).",
        file=out,
    )
    for repo in report.repositories:
        if repo.planned_bytes_freed is None:
            print(
                f"  bytes freed not known in {repo.repository}: {repo.bytes_freed_unknown}",
                file=out,
            )
    kept = report.kept
    if kept:
        ranked = sorted(kept.items(), key=lambda item: (-item[1], item[0]))
        print(
            f"Kept {sum(kept.values())}: " + ", ".join(f"{n} {reason}" for reason, n in ranked),
            file=out,
        )
    if after_sweep and report.deleted.manifests and report.store != "off":
        print(f"Undo: ecr-sweeper restore --run {report.run_id}", file=out)
    if after_sweep:
        for repo in report.repositories:
            for decision in repo.spared:
                print(
                    f"  planned but kept: {repo.repository} {short(decision.digest)} "
                    f"{decision.reason.value} {shorten(decision.cause)}",
                    file=out,
                )
    print_retention(out, report)
    hazards = report.lifecycle_hazards
    if hazards:
        print(
            f"Lifecycle hazards: {counted(len(hazards), 'manifest')} in use that an ECR "
            "lifecycle policy will expire:",
            file=out,
        )
        print_hazards(out, hazards)
    if report.circuit_breaker:
        print(f"Circuit breaker: {report.circuit_breaker.hint}", file=out)
    elif report.stopped_early:
        print(f"Stopped early: {report.stopped_early.value}.", file=out)
    if report.broken:
        print("Broken after the sweep:", file=out)
        print_problems(out, report.broken)
    print_failures(out, [f.as_dict() for f in report.all_failures])


def print_retention(out: TextIO, report: Report) -> None:
    """`Retention: 12 expired, 8 deleted, 4 held (3 pinned, 1 recently-pulled).` (to be deleted,
    in a plan), when a rule expired anything."""
    retention = report.retention
    if not retention.expired:
        return
    done = "deleted" if not report.dry_run else "to delete"
    line = f"Retention: {retention.expired} expired, {retention.deleted} {done}"
    held = sorted(retention.held.items(), key=lambda item: (-item[1], item[0]))
    if held:
        line += f", {sum(retention.held.values())} held (" + ", ".join(
            f"{n} {reason}" for reason, n in held
        )
        line += ")"
    print(line + ".", file=out)


def print_hazards(out: TextIO, hazards: Sequence[Hazard]) -> None:
    """One row per hazard: what ECR's own lifecycle policy will expire that is in use."""
    if not hazards:
        return
    rows = [
        [
            h.repository,
            short(h.digest),
            ", ".join(h.tags) or "-",
            str(h.rule),
            h.reason.value,
            h.cause,
        ]
        for h in hazards
    ]
    _table(out, ["REPOSITORY", "DIGEST", "TAGS", "RULE", "REASON", "CAUSE"], rows, {3})
    print(file=out)


def print_problems(out: TextIO, problems: Sequence[Problem]) -> None:
    rows = [
        [p.repository, short(p.digest), p.kind.value, p.problem, ", ".join(map(short, p.missing))]
        for p in problems
    ]
    _table(out, ["REPOSITORY", "DIGEST", "KIND", "PROBLEM", "MISSING"], rows, set())


def print_failures(out: TextIO, failures: Sequence[dict[str, str]]) -> None:
    # A pattern that matched nothing is said once, on stderr (commands.warn_run_failures).
    failures = [f for f in failures if f["code"] != NO_REPOSITORY_MATCHED]
    if not failures:
        return
    print("Failures (the report is not complete):", file=out)
    for failure in failures:
        where = " ".join(part for part in (failure["repository"], short(failure["digest"])) if part)
        print(f"  {where or '(registry)'}: {failure_text(failure)}", file=out)


def failure_text(failure: Failure | dict[str, str]) -> str:
    """`code: message`, the code once: a failed call's message already names its operation and
    code (`DescribeImages: RepositoryNotFoundException: ...`)."""
    if isinstance(failure, Failure):
        failure = failure.as_dict()
    code, message = failure["code"], failure["message"]
    return message if f"{code}: " in message else f"{code}: {message}"


def decision_dict(decision: Decision) -> dict[str, Any]:
    return {
        "digest": decision.digest,
        "kind": decision.kind.value,
        "verdict": decision.verdict.value,
        "reason": decision.reason.value,
        "cause": decision.cause,
    }


def print_json(out: TextIO, document: object) -> None:
    json.dump(document, out, indent=2, default=str)
    out.write("\n")


def plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def counted(count: int, one: str, many: str | None = None) -> str:
    """`1 manifest`, `3 manifests` (`many` when adding an s will not do)."""
    return f"{count} {plural(count, one, many or one + 's')}"
