"""Limits, filters and paging of the listing calls (corrections 4 and 5 in detail)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from harness import FakeRegistry, oci

REPO = "app"


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def seed_images(
    reg: FakeRegistry, n: int, *, tagged_every: int = 0, archived_every: int = 0
) -> list[str]:
    out = []
    for i in range(n):
        tags = [f"t{i}"] if tagged_every and i % tagged_every == 0 else []
        archived = bool(archived_every) and i % archived_every == 0
        out.append(
            reg.seed(REPO, oci.image_manifest(seed=i, layers=1), tags=tags, archived=archived)
        )
    return out


def all_pages(
    call: Callable[..., Any], key: str, token: str | None = None, **kwargs: Any
) -> list[list[Any]]:
    pages = []
    while True:
        response = call(**kwargs, **({"nextToken": token} if token else {}))
        pages.append(list(response[key]))
        token = response.get("nextToken")
        if not token:
            return pages


# --- 4: at most 100 ids --------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["batch_get_image", "batch_delete_image", "describe_images"])
def test_101_ids_are_refused_and_100_are_fine(reg: FakeRegistry, operation: str) -> None:
    digests = seed_images(reg, 100)
    call = getattr(reg.client, operation)
    ids = [{"imageDigest": d} for d in digests]
    with pytest.raises(ClientError) as err:
        call(repositoryName=REPO, imageIds=[*ids, {"imageTag": "extra"}])
    assert error_code(err) == "InvalidParameterException"
    assert len(reg.digests(REPO)) == 100  # nothing happened
    call(repositoryName=REPO, imageIds=ids)


def test_zero_ids_or_max_results_are_refused_client_side(reg: FakeRegistry) -> None:
    reg.create_repository(REPO)
    with pytest.raises(ParamValidationError):
        reg.client.batch_get_image(repositoryName=REPO, imageIds=[])
    with pytest.raises(ParamValidationError):
        reg.client.describe_images(repositoryName=REPO, maxResults=0)


# --- 5: describe_images --------------------------------------------------------------------------


def test_describe_images_default_page_is_100_and_pages_cover_everything(reg: FakeRegistry) -> None:
    digests = seed_images(reg, 250)
    pages = all_pages(reg.client.describe_images, "imageDetails", repositoryName=REPO)
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [d["imageDigest"] for p in pages for d in p] == digests  # push order, no repeats
    big = reg.client.describe_images(repositoryName=REPO, maxResults=1000)
    assert len(big["imageDetails"]) == 250 and "nextToken" not in big


def test_boto3_paginators_work(reg: FakeRegistry) -> None:
    seed_images(reg, 25, tagged_every=5)
    pages = list(
        reg.client.get_paginator("describe_images").paginate(
            repositoryName=REPO, PaginationConfig={"PageSize": 10}
        )
    )
    assert [len(p["imageDetails"]) for p in pages] == [10, 10, 5]
    ids = [
        i
        for p in reg.client.get_paginator("list_images").paginate(repositoryName=REPO)
        for i in p["imageIds"]
    ]
    assert len(ids) == 25


@pytest.mark.parametrize("max_results", [1001, 5000])
def test_max_results_above_1000_is_refused(reg: FakeRegistry, max_results: int) -> None:
    reg.create_repository(REPO)
    for call in (reg.client.describe_images, reg.client.list_images):
        with pytest.raises(ClientError) as err:
            call(repositoryName=REPO, maxResults=max_results)
        assert error_code(err) == "InvalidParameterException"
    with pytest.raises(ClientError) as err:
        reg.client.describe_repositories(maxResults=max_results)
    assert error_code(err) == "InvalidParameterException"


def test_tag_status_filter(reg: FakeRegistry) -> None:
    digests = seed_images(reg, 10, tagged_every=3)  # 0, 3, 6, 9 tagged
    tagged = {digests[i] for i in (0, 3, 6, 9)}

    def listed(status: str) -> set[str]:
        pages = all_pages(
            reg.client.describe_images,
            "imageDetails",
            repositoryName=REPO,
            filter={"tagStatus": status},
            maxResults=3,
        )
        return {d["imageDigest"] for p in pages for d in p}

    assert listed("TAGGED") == tagged
    assert listed("UNTAGGED") == set(digests) - tagged
    assert listed("ANY") == set(digests)


def test_image_status_filter_hides_archived_by_default(reg: FakeRegistry) -> None:
    digests = seed_images(reg, 6, archived_every=2)  # 0, 2, 4 archived
    archived = {digests[i] for i in (0, 2, 4)}

    def listed(**flt: str) -> set[str]:
        kwargs: dict[str, Any] = {"filter": flt} if flt else {}
        return {
            d["imageDigest"]
            for d in reg.client.describe_images(repositoryName=REPO, **kwargs)["imageDetails"]
        }

    assert listed() == set(digests) - archived
    assert listed(imageStatus="ACTIVE") == set(digests) - archived
    assert listed(imageStatus="ARCHIVED") == archived
    assert listed(imageStatus="ANY") == set(digests)
    assert listed(imageStatus="ANY", tagStatus="UNTAGGED") == set(digests)
    # list_images follows the same rule; digests() (harness view) sees everything.
    assert {
        i["imageDigest"] for i in reg.client.list_images(repositoryName=REPO)["imageIds"]
    } == set(digests) - archived
    assert reg.digests(REPO) == set(digests)


def test_invalid_filter_values_are_refused(reg: FakeRegistry) -> None:
    reg.create_repository(REPO)
    with pytest.raises(ClientError) as err:
        reg.client.describe_images(repositoryName=REPO, filter={"tagStatus": "SOMETIMES"})  # type: ignore[typeddict-item]
    assert error_code(err) == "InvalidParameterException"


def test_page_tokens_survive_deletions_between_pages(reg: FakeRegistry) -> None:
    digests = seed_images(reg, 10)
    first = reg.client.describe_images(repositoryName=REPO, maxResults=4)
    # Delete the last image of the page we got and one not yet seen.
    reg.client.batch_delete_image(
        repositoryName=REPO, imageIds=[{"imageDigest": digests[3]}, {"imageDigest": digests[5]}]
    )
    rest = all_pages(
        reg.client.describe_images,
        "imageDetails",
        repositoryName=REPO,
        maxResults=4,
        token=first["nextToken"],
    )
    assert [d["imageDigest"] for p in rest for d in p] == [digests[i] for i in (4, 6, 7, 8, 9)]


def test_bad_tokens_and_tokens_with_image_ids_are_refused(reg: FakeRegistry) -> None:
    d = seed_images(reg, 3)
    with pytest.raises(ClientError) as err:
        reg.client.describe_images(repositoryName=REPO, nextToken="garbage")
    assert error_code(err) == "InvalidParameterException"
    token = reg.client.list_images(repositoryName=REPO, maxResults=1)["nextToken"]
    with pytest.raises(ClientError):  # a ListImages token is not a DescribeImages token
        reg.client.describe_images(repositoryName=REPO, nextToken=token)
    with pytest.raises(ClientError) as err:
        reg.client.describe_images(
            repositoryName=REPO, imageIds=[{"imageDigest": d[0]}], maxResults=5
        )
    assert error_code(err) == "InvalidParameterException"


def test_describe_images_by_id(reg: FakeRegistry) -> None:
    a, b = seed_images(reg, 2)
    reg.tag(REPO, "v1", a)
    reg.set_archived(REPO, b)
    response = reg.client.describe_images(
        repositoryName=REPO, imageIds=[{"imageTag": "v1"}, {"imageDigest": a}, {"imageDigest": b}]
    )
    # Duplicates collapse; explicit ids are answered whatever their status.
    assert [(d["imageDigest"], d["imageStatus"]) for d in response["imageDetails"]] == [
        (a, "ACTIVE"),
        (b, "ARCHIVED"),
    ]
    with pytest.raises(ClientError) as err:
        reg.client.describe_images(
            repositoryName=REPO,
            imageIds=[{"imageDigest": a}, {"imageDigest": oci.sha256_digest(b"x")}],
        )
    assert error_code(err) == "ImageNotFoundException"
    with pytest.raises(ClientError) as err:
        reg.client.describe_images(repositoryName="missing")
    assert error_code(err) == "RepositoryNotFoundException"


# --- 5: list_images ------------------------------------------------------------------------------


def test_list_images_entries_filters_and_paging(reg: FakeRegistry) -> None:
    multi = reg.seed(REPO, oci.image_manifest(seed="multi"), tags=["a", "b"])
    loose = reg.seed(REPO, oci.image_manifest(seed="loose"))
    one = reg.seed(REPO, oci.image_manifest(seed="one"), tags=["c"])

    def ids(**kwargs: Any) -> list[dict[str, str]]:
        return [
            i
            for p in all_pages(reg.client.list_images, "imageIds", repositoryName=REPO, **kwargs)
            for i in p
        ]

    everything = [
        {"imageDigest": multi, "imageTag": "a"},
        {"imageDigest": multi, "imageTag": "b"},
        {"imageDigest": loose},
        {"imageDigest": one, "imageTag": "c"},
    ]
    assert ids() == everything
    assert (
        ids(maxResults=1) == everything
    )  # one entry per page, tags of one image split across pages
    assert ids(filter={"tagStatus": "TAGGED"}) == [everything[i] for i in (0, 1, 3)]
    assert ids(filter={"tagStatus": "UNTAGGED"}) == [{"imageDigest": loose}]


# --- 5: describe_repositories --------------------------------------------------------------------


def test_describe_repositories_pages(reg: FakeRegistry) -> None:
    names = [f"repo-{i:03d}" for i in range(120)]
    for name in names:
        reg.create_repository(name)
    pages = all_pages(reg.client.describe_repositories, "repositories")
    assert [len(p) for p in pages] == [100, 20]
    assert sorted(r["repositoryName"] for p in pages for r in p) == names
    small = all_pages(reg.client.describe_repositories, "repositories", maxResults=50)
    assert [len(p) for p in small] == [50, 50, 20]
    named = reg.client.describe_repositories(repositoryNames=["repo-001", "repo-002"])
    assert [r["repositoryName"] for r in named["repositories"]] == ["repo-001", "repo-002"]
    with pytest.raises(ClientError) as err:
        reg.client.describe_repositories(repositoryNames=["repo-001"], maxResults=5)
    assert error_code(err) == "InvalidParameterException"
