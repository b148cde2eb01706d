"""Tags something runs by, in the core: found in text (model.tag_references), held against
retention (lifecycle.held, plan.make_plan), reported by the audit (audit.hazards)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from sweeper import audit, lifecycle
from sweeper.model import Image, Kind, Manifest, Reason, Verdict, tag_references
from sweeper.pins.core import is_registry
from sweeper.plan import Policy, make_plan

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
DIGEST = "sha256:" + "a" * 64
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

REFERENCES: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "tag": (f"{HOST}/app:ci-50", [(HOST, "app", "ci-50")]),
    "nested repository in yaml": (
        f"image: {HOST}/team/web-app:v1.2.3\n",
        [(HOST, "team/web-app", "v1.2.3")],
    ),
    "no tag means latest": (f'"{HOST}/app"', [(HOST, "app", "latest")]),
    "tag with digest pulls the digest": (f"{HOST}/app:v1@{DIGEST}", []),
    "digest only": (f"{HOST}/app@{DIGEST}", []),
    "china partition": (
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app:prod",
        [("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "app", "prod")],
    ),
    "two in a list": (
        f"{HOST}/a:1,{HOST}/b:2",
        [(HOST, "a", "1"), (HOST, "b", "2")],
    ),
    "not ecr": ("docker.io/library/nginx:1.27", []),
    "a registry url, no image": (f"https://{HOST}/v2/", []),
}


@pytest.mark.parametrize(("text", "found"), REFERENCES.values(), ids=REFERENCES.keys())
def test_tag_references_in_text(text: str, found: list[tuple[str, str, str]]) -> None:
    assert tag_references(text) == found


def test_only_this_registrys_host_is_this_registry() -> None:
    assert is_registry(HOST, "123456789012", "us-east-1")
    assert not is_registry(HOST, "123456789012", "eu-west-1")
    assert not is_registry(HOST, "999999999999", "us-east-1")


def d(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def builds() -> list[Image]:
    return [
        Image(d(f"ci-{n}"), (f"ci-{n}",), NOW - timedelta(days=10 - n), 100, OCI_MANIFEST)
        for n in range(1, 6)
    ]


KEEP_TWO = lifecycle.parse_rules(
    [
        {
            "rulePriority": 1,
            "description": "keep two",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["ci-*"],
                "countType": "imageCountMoreThan",
                "countNumber": 2,
            },
            "action": {"type": "expire"},
        }
    ],
    "rules",
)


def test_retention_holds_an_expired_image_whose_tag_is_in_use_naming_where() -> None:
    images = builds()
    expired = lifecycle.expire(KEEP_TWO, images, NOW)
    assert set(expired) == {d("ci-1"), d("ci-2"), d("ci-3")}
    held = lifecycle.held(expired, images, {"ci-2": "ecs:task-definition/web:3 container c0"})
    assert held == {d("ci-2"): "tag ci-2 in use (ecs:task-definition/web:3 container c0)"}
    manifests = {i.digest: Manifest(Kind.IMAGE, OCI_MANIFEST) for i in images}
    plan = make_plan("app", images, manifests, {}, Policy(), NOW, expired=expired, held=held)
    decision = plan.decisions[d("ci-2")]
    assert (decision.verdict, decision.reason) == (Verdict.KEEP, Reason.TAG_IN_USE)
    assert decision.cause == held[d("ci-2")]
    assert decision.expired_by == "rule 1: keep two"
    assert set(plan.deletions) == {d("ci-1"), d("ci-3")}


def test_a_tag_in_use_that_no_rule_expires_changes_nothing() -> None:
    images = builds()
    expired = lifecycle.expire(KEEP_TWO, images, NOW)
    assert lifecycle.held(expired, images, {"ci-5": "ssm:/deploy/web"}) == {}
    assert lifecycle.held({}, images, {"ci-2": "ssm:/deploy/web"}) == {}


def test_the_audit_reports_a_rule_that_would_expire_a_tag_in_use() -> None:
    images = builds()
    found = audit.hazards(
        "app",
        images,
        {},
        KEEP_TWO,
        {},
        Policy(keep_pulled_within=None),
        NOW,
        tags_in_use={"ci-3": "eks:prod/default/deployment/web container app"},
    )
    assert [(h.digest, h.reason.value, h.rule) for h in found] == [(d("ci-3"), "tag-in-use", 1)]
    assert found[0].cause == (
        "tag ci-3 in use (eks:prod/default/deployment/web container app); "
        "rule 1: keep two expires it"
    )
