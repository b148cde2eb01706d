"""The post-sweep check: list a repository again and find what is broken now (validate.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..manifests import parse_all
from ..model import Manifest
from ..plan import needs_content
from ..ports import NOT_FOUND, Registry, RegistryError
from ..validate import Problem, find_problems
from .decision_log import log
from .state import Failure


@dataclass(slots=True)
class RepositoryCheck:
    """The outcome of validating one repository as it is now."""

    repository: str
    manifests: int = 0
    problems: list[Problem] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def check_repository(
    registry: Registry, name: str, known: Mapping[str, Manifest] | None = None
) -> RepositoryCheck:
    """List `name` again and read its indexes: what is broken now.

    Re-listing checks the registry as it is, including anything that changed during the run,
    where checking the snapshot minus our deletions would only check our arithmetic. `known`
    holds manifests this run already parsed: manifests are immutable, so only the indexes that
    appeared since (or were never read) are fetched again.
    """
    check = RepositoryCheck(name)
    known = known or {}
    try:
        images = registry.images(name)
        fetched = registry.manifests(
            name, [i.digest for i in images if needs_content(i) and i.digest not in known]
        )
    except RegistryError as exc:
        check.failures.append(Failure(name, "", exc.code, f"validating: {exc}"))
        return check
    gone = {d for d, (code, _) in fetched.failures.items() if code == NOT_FOUND}
    for digest, (code, message) in fetched.failures.items():
        if code != NOT_FOUND:
            check.failures.append(
                Failure(name, digest, code, f"validating: cannot read this index: {message}")
            )
    present = [i for i in images if i.digest not in gone]  # deleted since the listing
    parsed = parse_all(fetched.content, {i.digest: i for i in present})
    parsed.update({i.digest: known[i.digest] for i in present if i.digest in known})
    check.manifests = len(present)
    check.problems = find_problems(name, present, parsed)
    for problem in check.problems:
        log.warning("broken", extra=problem.as_dict())
    return check
