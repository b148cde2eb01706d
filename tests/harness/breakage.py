"""Registry states that ECR's API refuses to create, built behind its back for validation tests.

ECR refuses to push an index whose children are missing and to delete a child that an index
lists, so a broken index cannot be made through the API (nor through `FakeRegistry`, which
enforces both). Yet `ecr-sweeper validate` must find one, as it would after an ECR incident, a
replication gap, or another tool deleting through a path that skipped the check. These helpers
change moto's backend directly; the harness's own lookups notice the changed image list and
rebuild themselves.

    from harness.breakage import remove_behind_ecr

    build = reg.push_buildx("app", tag="latest")
    remove_behind_ecr(reg, "app", build.attestations["linux/amd64"])  # the index is now broken
"""

from __future__ import annotations

from moto.ecr.models import ecr_backends

from .ecr import FakeRegistry


def remove_behind_ecr(registry: FakeRegistry, repository: str, digest: str) -> None:
    """Remove one manifest, whoever lists it, as no ECR API call would. KeyError if absent."""
    repo = ecr_backends[registry.account_id][registry.region].repositories[repository]
    for image in repo.images:
        if image.get_image_digest() == digest:
            repo.images.remove(image)
            return
    raise KeyError(f"no image {digest} in repository {repository!r}")
