"""The scan phase: list one repository, read the bytes its plan needs, plan it.

Reads are as few as the graph allows (docs/performance.md, "The lower bound"): indexes (and
manifests of unstated type) first, and only if something in the repository could be deleted; then
each would-be deletion, classified from its own bytes; the spare room of those calls goes to the
manifests the bytes-freed figure needs. Planning keeps of the repository only what its sweep and the
report need (`RepositoryRun`), and logs every decision that is final already (every keep).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from .. import audit, freed, lifecycle, ports
from ..manifests import INDEX_TYPES, parse_all
from ..model import Decision, Descriptor, Image, Kind, Manifest, Plan, Reason, Verdict
from ..plan import make_plan, may_delete, may_mention_manifests, needs_content
from ..ports import (
    INTERNAL,
    NOT_FOUND,
    TIME_BUDGET,
    RegistryError,
    Stored,
    StoreError,
    internal_message,
)
from ..store.codec import digest_of, verified
from ..validate import outline
from .context import INTERRUPTED, PLANNED_LIMIT, Context
from .decision_log import log, log_decisions
from .state import RepositoryRun

STORE_UNAVAILABLE = "store unavailable"  # the log line's message (once per run)
# Why a repository was not scanned (or audited) at all: the failure's words, by its code.
TIME_UP = "the time budget ran out first"
STOPPED = "the run was interrupted first"


def plan_repository(ctx: Context, name: str) -> RepositoryRun:
    repo = RepositoryRun(name)
    if ctx.budget.out_for_scanning():
        repo.out_of_time = True
        code = ctx.budget.code
        repo.fail("", code, f"not scanned: {TIME_UP if code == TIME_BUDGET else STOPPED}")
        return repo
    if ctx.planned.full:
        # Left to the next run, as if out of time (run.rotation takes it first then).
        repo.out_of_time = True
        repo.fail(
            "",
            PLANNED_LIMIT,
            f"not scanned: the run holds {ctx.planned.limit} planned deletions already",
        )
        return repo
    scan = _Scan(ctx, repo)
    try:
        scan.run()
    except RegistryError as exc:
        # A scan cut short (between pages or fetches) is evidence missing like any other: the
        # repository deletes nothing this run.
        repo.out_of_time = exc.code in (TIME_BUDGET, INTERRUPTED)
        if not scan.listed and not repo.out_of_time:
            # A listing that failed could hide subjects of other repositories' signatures; one
            # the time budget left for another night is a repository this run does not see.
            ctx.listings.not_listed(name)
        repo.fail("", exc.code, str(exc))
        scan.keep_all("repository incomplete")
        scan.save_stored()  # what was read is worth keeping, whatever stopped the scan
    except Exception as exc:  # contained: the other repositories go on
        if not scan.listed:
            ctx.listings.not_listed(name)
        log.exception("planning failed", extra={"repository": name})
        repo.fail("", INTERNAL, internal_message(exc))
        scan.keep_all("planning failed")
    ctx.planned.add(sum(len(wave) for wave in repo.waves))
    return repo


def audit_repository(ctx: Context, name: str) -> RepositoryRun:
    """What the audit of ECR's own lifecycle policy needs of one repository, and no more (the
    command's `audit`): the listing, the policy and, when there is one, the manifests that may
    list others (the prediction counts images as people mean them, not index children). Plans
    nothing: no manifest is decided, and a failed read leaves the repository unaudited."""
    repo = RepositoryRun(name)
    if ctx.budget.out_for_scanning():
        repo.out_of_time = True
        code = ctx.budget.code
        repo.fail("", code, f"not audited: {TIME_UP if code == TIME_BUDGET else STOPPED}")
        return repo
    try:
        _Scan(ctx, repo).audit()
    except RegistryError as exc:
        repo.out_of_time = exc.code in (TIME_BUDGET, INTERRUPTED)
        repo.fail("", exc.code, str(exc))
    return repo


class _Scan:
    """One repository's scan; its working state (listing, parsed bytes) dies with it."""

    def __init__(self, ctx: Context, repo: RepositoryRun) -> None:
        self.ctx = ctx
        self.repo = repo
        self.images: dict[str, Image] = {}
        self.already_gone = repo.already_gone  # listed, then found deleted by someone else
        self.vanished: set[str] = set()  # survivors found gone when read for the bytes figure
        # The manifest store: what it held for this repository, checked, and what this scan
        # read from ECR (kept only with a store: it goes there, and into the journal).
        self.stored: dict[str, Stored] = {}
        self.fresh: dict[str, str] = {}
        self.store_changed = False
        self.store_failed_here = False  # this repository's load failed: do not overwrite it
        # Archived indexes ECR would not serve and the store did not hold: judged as listing
        # whatever was pushed before them (see `assume_archived`).
        self.assumed: set[str] = set()
        self.listed = False  # the whole listing came, and the run's listings know it

    def run(self) -> None:
        ctx, repo, name = self.ctx, self.repo, self.repo.repository
        images = ctx.registry.images(name, stop=ctx.budget.out)
        self.images = {image.digest: image for image in images}
        ctx.listings.listed(self.images)
        self.listed = True
        repo.manifests = len(images)
        self.load_stored()
        rules = lifecycle.policy_for(ctx.settings.retention, name)
        audited = self.read_lifecycle_policy() if ctx.settings.audit_lifecycle_policies else None
        may_go = [i.digest for i in images if may_delete(i, ctx.pins, ctx.policy, ctx.now)]
        # What may name other manifests (indexes, artifacts of a kind the listing does not
        # tell) is read first, tagged or not: any of it may keep a manifest that could go, and
        # retention and the audit count images by it. If nothing here could go and no rule is
        # to be judged, no bytes are needed at all.
        wanted = may_go or rules is not None or audited is not None
        first_reads = [i.digest for i in images if may_mention_manifests(i)] if wanted else []
        # The last call of that step has room to spare: fill it with manifests that the second
        # step reads unless a kept index lists them. One call instead of two; what turns out not
        # to be needed is dropped, so the plan is the same either way. Only what the store
        # lacks takes room in a call.
        from_ecr = sum(1 for d in first_reads if d not in self.stored)
        spare = -from_ecr % ports.BATCH_SIZE if from_ecr else 0
        listed_first = set(first_reads)
        # Past the would-be deletions, the room goes to the rest: if anything is deleted, the
        # bytes-freed figure reads every manifest of the repository anyway.
        taken = listed_first.union(may_go)
        prefetch = [
            d
            for d in (
                *(d for d in may_go if d not in listed_first),
                *(i.digest for i in images if i.digest not in taken),
            )
            if d not in self.stored
        ][:spare]
        parsed, unreadable = self.read(first_reads + prefetch)
        parsed.update(self.assume_archived(unreadable, listed_first))
        index_failures = {
            d: f for d, f in unreadable.items() if d in listed_first and d not in self.assumed
        }
        if index_failures:
            # An index we cannot read may list anything: the evidence is missing.
            for digest, (code, message) in index_failures.items():
                repo.fail(digest, code, f"cannot read a manifest that may list others: {message}")
            self.keep_all("repository incomplete")
            self.save_stored()
            return
        present = [i for i in images if i.digest not in self.already_gone]
        indexes = {d: parsed[d] for d in first_reads if d in parsed}
        expired: dict[str, str] = {}
        held: dict[str, str] = {}
        in_use = ctx.tags_in_use.get(name, {})
        if rules is not None:
            expired = lifecycle.expire(rules, lifecycle.top_level(present, indexes), ctx.now)
            held = lifecycle.held(expired, present, in_use)
            repo.expired = set(expired)
        if audited is not None:
            hazards = audit.hazards(
                name,
                present,
                indexes,
                audited,
                ctx.pins,
                ctx.policy,
                ctx.now,
                tags_in_use=in_use,
            )
            for hazard in hazards:
                log.warning(audit.HAZARD_MESSAGE, extra=hazard.as_dict())
            repo.hazards = hazards
            repo.unevaluated = audit.unevaluated(name, audited)
            for rule in repo.unevaluated:
                log.warning(audit.UNEVALUATED_MESSAGE, extra=rule.as_dict())
        first = make_plan(
            name,
            present,
            indexes,
            ctx.pins,
            ctx.policy,
            ctx.now,
            provisional=True,
            expired=expired,
            held=held,
            rule_tags=rules.selects_tag if rules is not None else None,
        )
        # Every would-be deletion is classified from its own bytes, read exactly once.
        needed = listed_first.union(first.deletions)
        second = [d for d in first.deletions if d not in parsed and d not in unreadable]
        if first.deletions:
            # Deletions are likely: read the survivors in the same calls, after what the plan
            # needs. The bytes-freed figure needs their blobs; here they share calls instead of
            # adding a third round. The plan ignores them.
            survivors = [
                i.digest
                for i in present
                if i.digest not in parsed and i.digest not in unreadable and i.digest not in needed
            ]
            if ctx.freed_reads.take(sum(1 for d in survivors if d not in self.stored)):
                second += survivors
        more, failed = self.read(second)
        parsed.update(more)
        unreadable.update(failed)
        plan = make_plan(
            name,
            [i for i in present if i.digest not in self.already_gone],
            {d: manifest for d, manifest in parsed.items() if d in needed},
            ctx.pins,
            ctx.policy,
            ctx.now,
            unreadable={
                d: f"{code}: {msg}" for d, (code, msg) in unreadable.items() if d in needed
            },
            expired=expired,
            held=held,
            rule_tags=rules.selects_tag if rules is not None else None,
        )
        if self.assumed:
            # Kept because an index nobody can read may list it: say so.
            plan = replace(
                plan,
                decisions={
                    digest: replace(
                        decision,
                        reason=Reason.UNREADABLE,
                        cause=f"may be listed by {decision.cause} (archived, unreadable)",
                    )
                    if decision.reason is Reason.LISTED_BY_KEPT_INDEX
                    and decision.cause in self.assumed
                    else decision
                    for digest, decision in plan.decisions.items()
                },
            )
        planned = plan.deletions
        # Read once per run: a survivor we could not read may hold any blob.
        count = len(unreadable)
        unknown = f"{count} manifest{'' if count == 1 else 's'} unreadable" if count else ""
        shared = ctx.shared_blobs
        # Where layers are shared between repositories, every repository's blobs are evidence
        # for the others' figures: read in full even with nothing to delete.
        if (planned or (shared is not None and not shared.reason)) and not unknown:
            unknown = self.read_survivors(parsed)
        self.save_stored()
        if unknown:
            repo.ledger = freed.unknown(unknown)
        else:
            leaving = set(planned) | repo.already_gone | self.vanished
            others = [d for d in self.images if d not in leaving]
            found = freed.candidates(parsed, planned, others)
            repo.ledger = (
                freed.unknown(found) if isinstance(found, str) else freed.from_candidates(found)
            )
            if shared is not None and not shared.reason:
                shared.read(name, (b for m in parsed.values() for b in freed.held_digests(m)))
                if planned and not isinstance(found, str):
                    repo.freed_candidates = found
        self.keep(plan, parsed)
        repo.scanned = True

    def audit(self) -> None:
        ctx, repo, name = self.ctx, self.repo, self.repo.repository
        images = ctx.registry.images(name, stop=ctx.budget.out)
        self.images = {image.digest: image for image in images}
        repo.manifests = len(images)
        audited = self.read_lifecycle_policy()
        if audited is None:
            return
        parsed, unreadable = self.read([i.digest for i in images if may_mention_manifests(i)])
        for digest, (code, message) in unreadable.items():
            repo.fail(
                digest, code, f"not audited: cannot read a manifest that may list others: {message}"
            )
        if unreadable:
            return
        present = [i for i in images if i.digest not in self.already_gone]
        # The same judgement as a dry run's audit (`run`): tags in use, and the rules it cannot
        # evaluate, said rather than silently left out.
        repo.hazards = audit.hazards(
            name,
            present,
            parsed,
            audited,
            ctx.pins,
            ctx.policy,
            ctx.now,
            tags_in_use=ctx.tags_in_use.get(name),
        )
        for hazard in repo.hazards:
            log.warning(audit.HAZARD_MESSAGE, extra=hazard.as_dict())
        repo.unevaluated = audit.unevaluated(name, audited)
        for rule in repo.unevaluated:
            log.warning(audit.UNEVALUATED_MESSAGE, extra=rule.as_dict())
        repo.scanned = True

    def read_lifecycle_policy(self) -> lifecycle.LifecyclePolicy | None:
        """The repository's ECR lifecycle policy, to audit (None: none, or none readable).

        The audit only reports: a policy that cannot be read or understood is a failure of the
        run, never a reason to keep or delete anything.
        """
        name = self.repo.repository
        try:
            text = self.ctx.registry.lifecycle_policy(name)
            return None if text is None else lifecycle.parse_policy_text(text)
        except RegistryError as exc:
            self.repo.fail("", exc.code, f"lifecycle policy not audited: {exc}")
        except lifecycle.PolicyError as exc:
            self.repo.fail("", "LifecyclePolicyNotUnderstood", f"not audited: {exc}")
        return None

    def read(
        self, digests: Sequence[str]
    ) -> tuple[dict[str, Manifest], dict[str, tuple[str, str]]]:
        """Parse manifests one call's worth at a time: only the parsed form is kept, never a
        whole response or the bytes of more than one call."""
        ctx, name = self.ctx, self.repo.repository
        parsed, digests = self.from_store(digests)
        unreadable: dict[str, tuple[str, str]] = {}
        size = ports.BATCH_SIZE
        for start in range(0, len(digests), size):
            if start and ctx.budget.out():
                # Out of time between fetches: this repository's evidence stays incomplete.
                raise RegistryError("BatchGetImage", ctx.budget.code, "stopped between batches")
            fetched = ctx.registry.manifests(
                name, digests[start : start + size], stop=ctx.budget.out
            )
            parsed.update(parse_all(fetched.content, self.images))
            self.keep_fresh(fetched.content)
            for digest, (code, message) in fetched.failures.items():
                if code == NOT_FOUND:
                    self.already_gone.add(digest)  # deleted by someone else since the listing
                else:
                    unreadable[digest] = (code, message)
        return parsed, unreadable

    def read_survivors(self, parsed: dict[str, Manifest]) -> str:
        """Read the manifests planning did not, so the bytes-freed figure sees every blob held.

        Each manifest at most once per run, 100 per call; a repository whose reads would pass
        the run's read limit reads nothing; the time budget stops it between calls; any failure
        only makes the figure unknown for this repository (the returned reason), never the run
        incomplete. Survivors found gone hold nothing.
        """
        ctx, name = self.ctx, self.repo.repository
        missing = [d for d in self.images if d not in parsed and d not in self.already_gone]
        stored, missing = self.from_store(missing)
        parsed.update(stored)
        if not ctx.freed_reads.take(len(missing)):
            return (
                f"{len(missing)} manifests to read, past the run's read limit of "
                f"{ctx.freed_reads.limit}"
            )
        size = ports.BATCH_SIZE
        for start in range(0, len(missing), size):
            if ctx.budget.out():
                return "time budget ran out before the survivors were read"
            try:
                fetched = ctx.registry.manifests(name, missing[start : start + size])
            except RegistryError as exc:
                return str(exc)
            parsed.update(parse_all(fetched.content, self.images))
            self.keep_fresh(fetched.content)
            for digest, (code, message) in fetched.failures.items():
                if code == NOT_FOUND:
                    self.vanished.add(digest)  # gone since the listing: it holds nothing
                else:
                    return f"{digest} unreadable: {code}: {message}"
        return ""

    def keep(self, plan: Plan, parsed: dict[str, Manifest]) -> None:
        """Keep what the sweep and the report need; log the decisions final already (keeps)."""
        repo, ctx = self.repo, self.ctx
        repo.waves = plan.waves
        repo.children = dict(plan.children)
        repo.referrers = dict(plan.referrers)
        repo.absent_subjects = dict(plan.absent_subjects)
        keeps = [d for d in plan.decisions.values() if d.verdict is Verdict.KEEP]
        repo.kept = Counter(d.reason.value for d in keeps)
        kept = (
            plan.decisions.keys()
            if ctx.options.retain_decisions
            else [*plan.deletions, *(d for d in repo.expired if d in plan.decisions)]
        )
        repo.decisions = {d: plan.decisions[d] for d in kept}
        repo.images = {d: self.images[d] for d in kept}
        if plan.waves and not ctx.settings.dry_run:
            # Manifests are immutable: the post-sweep check need not read these indexes again.
            repo.known = {d: outline(m) for d, m in parsed.items() if needs_content(self.images[d])}
        log_decisions(repo.repository, keeps)

    def keep_all(self, cause: str) -> None:
        """Every manifest kept: the evidence is incomplete."""
        decisions = {
            digest: Decision(
                digest, Kind.UNCLASSIFIED, Verdict.KEEP, Reason.UNREADABLE, cause, image.size
            )
            for digest, image in self.images.items()
        }
        self.repo.kept = Counter(d.reason.value for d in decisions.values())
        self.repo.waves = ()
        if self.ctx.options.retain_decisions:
            self.repo.decisions = decisions
            self.repo.images = dict(self.images)
        log_decisions(self.repo.repository, decisions.values())

    # --- the manifest store -------------------------------------------------------------------

    def load_stored(self) -> None:
        """What the store holds for this repository, each entry checked against its digest."""
        store, tally = self.ctx.options.store, self.ctx.store
        if store is None:
            return
        try:
            entries = store.load(self.repo.repository)
        except StoreError as exc:
            self.store_failed(exc)
            return
        self.stored, rejected = verified(entries, self.images)
        if rejected:
            log.warning(
                "store entries rejected",
                extra={
                    "repository": self.repo.repository,
                    "digests": rejected[:10],
                    "count": len(rejected),
                },
            )
        tally.count(rejected=len(rejected))
        # Entries of manifests gone since (or rejected) are dropped when the scan saves.
        self.store_changed = len(self.stored) != len(entries)

    def from_store(self, digests: Sequence[str]) -> tuple[dict[str, Manifest], list[str]]:
        """The stored ones of `digests`, parsed, and the others, to read from the registry."""
        if not self.stored:
            return {}, list(digests)
        found = {d: self.stored[d].text for d in digests if d in self.stored}
        self.ctx.store.count(hits=len(found))
        return parse_all(found, self.images), [d for d in digests if d not in found]

    def keep_fresh(self, content: dict[str, str]) -> None:
        if self.ctx.options.store is not None:
            self.fresh.update(content)

    def save_stored(self) -> None:
        """Put back what this scan read that the store lacked (only bytes that hash to their
        digest), without what is no longer listed. A failure costs the next run reads, no more."""
        store = self.ctx.options.store
        fresh = {
            d: Stored(t, self.images[d].media_type)
            for d, t in self.fresh.items()
            if d in self.images and d not in self.stored and digest_of(t) == d
        }
        # Past the save the scan needs only the parsed manifests: the bytes go now, not when
        # the scan ends (up to `concurrency` scans run at once).
        self.fresh = {}
        if store is None or self.store_failed_here or not (fresh or self.store_changed):
            self.stored = {}
            return
        entries = {d: e for d, e in self.stored.items() if d not in self.already_gone}
        self.stored = {}
        entries.update(fresh)
        del fresh
        try:
            store.save(self.repo.repository, entries)
        except StoreError as exc:
            self.store_failed(exc)

    def store_failed(self, exc: StoreError) -> None:
        self.store_failed_here = True
        if self.ctx.store.fail():
            log.warning(
                STORE_UNAVAILABLE, extra={"repository": self.repo.repository, "error": str(exc)}
            )

    def assume_archived(
        self, unreadable: dict[str, tuple[str, str]], listed_first: set[str]
    ) -> dict[str, Manifest]:
        """An archived index ECR will not serve (and the store lacks) may list anything pushed
        at or before it (its children were in the repository when it was pushed: ECR refuses an
        index whose children are missing), and nothing pushed after it. It stands as an
        unknown manifest mentioning each of those, so all of them are kept and the rest of the
        repository is swept. Without a push time, it may list anything: the repository is kept
        whole, as for any index that cannot be read."""
        assumed: dict[str, Manifest] = {}
        for digest in unreadable:
            image = self.images.get(digest)
            if (
                image is None
                or digest not in listed_first
                or not image.archived
                or image.media_type not in INDEX_TYPES
                or image.pushed_at is None
            ):
                continue
            pushed = image.pushed_at
            older = tuple(
                Descriptor(other.digest)
                for other in self.images.values()
                if other.digest != digest and (other.pushed_at is None or other.pushed_at <= pushed)
            )
            assumed[digest] = Manifest(
                Kind.UNKNOWN,
                image.media_type,
                older,
                note="archived index ECR will not serve: may list anything pushed before it",
            )
            self.assumed.add(digest)
        return assumed
