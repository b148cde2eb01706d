"""Opt-in by repository tag: with `required_repository_tag` (`key=value`) set, only repositories
that carry that tag are swept.

The template grants `ecr:BatchDeleteImage` under the same condition (`ecr:ResourceTag/<key>`), so
IAM refuses a delete anywhere else; the run leaves the other repositories out before it scans
them, and reports them as skipped, which is not a failure. A repository whose tags cannot be read
is not swept either, and that is a failure (the run is incomplete): whether it opted in is
unknown.

`opted_in` decides (pure); `read_opt_in` reads the tags it needs (one ListTagsForResource call per
repository, on a few threads) and decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .ports import Registry, RegistryError


@dataclass(slots=True)
class OptIn:
    """Which of the repositories asked about are swept, in the order they were given."""

    selected: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # without the required tag: not swept
    unreadable: dict[str, RegistryError] = field(default_factory=dict)  # tags unknown: not swept


def opted_in(
    names: Sequence[str],
    tags: Mapping[str, Mapping[str, str]],
    required: tuple[str, str] | None,
) -> OptIn:
    """Split `names` by whether their tags (`tags[name]`) carry `required` (key, value).

    Without a requirement every name is selected and no tag is looked at. A name whose tags are
    not in `tags` is skipped: it has not shown the tag.
    """
    outcome = OptIn()
    if required is None:
        outcome.selected = list(names)
        return outcome
    key, value = required
    for name in names:
        (outcome.selected if tags.get(name, {}).get(key) == value else outcome.skipped).append(name)
    return outcome


def read_opt_in(
    registry: Registry,
    arns: Mapping[str, str],
    names: Sequence[str],
    required: tuple[str, str] | None,
    workers: int = 8,
) -> OptIn:
    """`opted_in` over `names`, reading each one's tags through its ARN (`arns`, as
    `Registry.repository_arns` gives them). Nothing is read without a requirement. A repository
    whose tags cannot be read is neither selected nor skipped: it is in `unreadable`."""
    if required is None:
        return opted_in(names, {}, None)

    def read(name: str) -> dict[str, str] | RegistryError:
        if not arns.get(name):
            return RegistryError("ListTagsForResource", "NoRepositoryArn", f"no ARN for {name}")
        try:
            return registry.repository_tags(arns[name])
        except RegistryError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names) or 1))) as pool:
        answers = dict(zip(names, pool.map(read, names), strict=True))
    tags = {name: answer for name, answer in answers.items() if isinstance(answer, dict)}
    outcome = opted_in([n for n in names if n in tags], tags, required)
    outcome.unreadable = {n: a for n, a in answers.items() if isinstance(a, RegistryError)}
    return outcome
