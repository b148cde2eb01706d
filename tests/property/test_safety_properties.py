"""The promise on random registries: the handler, dry then real, in both scopes, against moto.

After every run: nothing live is gone, no surviving manifest lost anything it lists, the real run
deleted exactly what the dry run planned (and what the oracle, from the model alone, says is
garbage), a second run deletes nothing more, and the report's figures are what changed. The
registries hold tag-scheme accessories too: they go with their subject, their own tag with them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from conftest import Invoke
from harness.fresh import fresh_registry
from harness.generated import Model, Oracle, broken_promises, registries, seed_into, sizes, snapshot

# `invoke` is safe to share between examples: each call starts with clean metrics and state.
SHARED_FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def removed(before: dict[str, set[str]], after: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(repo, d) for repo, digests in before.items() for d in digests - after[repo]}


def listed(report: dict[str, Any]) -> set[tuple[str, str]]:
    assert not report["deletions_truncated"]
    return {(d["repository"], d["digest"]) for d in report["deletions"]}


def check_figures(
    report: dict[str, Any],
    before: dict[str, set[str]],
    after: dict[str, set[str]],
    size: dict[tuple[str, str], int],
) -> None:
    """The report says what happened: counts and bytes of what is gone, and every decision."""
    gone = removed(before, after)
    assert report["complete"] is True, report["failures"]
    assert report["failures"] == []
    assert report["repositories"] == len(before)
    assert report["manifests"] == sum(len(d) for d in before.values())
    deleted = dict(report["deleted"])
    # Blobs really freed never exceed the nominal sizes of what went (sizes follow ECR's rules).
    assert 0 <= deleted.pop("bytes_freed") <= deleted["bytes"]
    assert deleted == {"manifests": len(gone), "bytes": sum(size[g] for g in gone)}
    assert report["already_gone"] == {"manifests": 0}
    # Every manifest is either kept for a reason or (planned to be) deleted.
    assert sum(report["kept"].values()) + report["planned"]["manifests"] == report["manifests"]
    planned = listed(report)
    planned_figures = dict(report["planned"])
    assert 0 <= planned_figures.pop("bytes_freed") <= planned_figures["bytes"]
    assert planned_figures == {
        "manifests": len(planned),
        "bytes": sum(size[p] for p in planned),
    }
    for entry in report["deletions"]:
        assert entry["deleted"] is (not report["dry_run"])


@SHARED_FIXTURES
@given(model=registries(), concurrency=st.sampled_from([1, 8]))
def test_dry_and_real_runs_keep_the_promise_on_random_registries(
    model: Model, concurrency: int, invoke: Invoke
) -> None:
    runs_keep_the_promise(model, concurrency, invoke)


def runs_keep_the_promise(model: Model, concurrency: int, invoke: Invoke) -> None:
    """Dry then real runs in both scopes keep the promise, and delete exactly the plan."""
    note(model.describe())
    oracle = Oracle(model)
    with fresh_registry() as registry:
        seed_into(registry, model, datetime.now(UTC))
        repos = model.repositories
        for scope in ("attestations", "orphans"):
            request = {"scope": scope, "pins": model.pins, "concurrency": concurrency}
            before = snapshot(registry, repos)
            size = sizes(registry, repos)
            garbage = {(r, d) for r in repos for d in oracle.garbage(r, before[r], scope)}

            dry = invoke(dry_run=True, **request)
            assert snapshot(registry, repos) == before, "a dry run changed the registry"
            check_figures(dry, before, before, size)
            assert listed(dry) == garbage, f"{scope}: dry run plan differs from the oracle"

            real = invoke(dry_run=False, **request)
            after = snapshot(registry, repos)
            assert broken_promises(oracle, before, after) == []
            assert removed(before, after) == listed(dry), f"{scope}: real run != dry run"
            assert listed(real) == listed(dry)
            check_figures(real, before, after, size)

            again = invoke(dry_run=False, **request)
            assert snapshot(registry, repos) == after, f"{scope}: a second run deleted more"
            assert again["planned"]["manifests"] == 0
            check_figures(again, after, after, size)
        # In the end nothing is left but what the orphans scope keeps.
        final = snapshot(registry, repos)
        for repo in repos:
            assert not oracle.garbage(repo, final[repo], "orphans")
