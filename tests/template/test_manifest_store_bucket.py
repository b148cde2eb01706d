"""The manifest store's bucket: encrypted, private, TLS only, unversioned, the journal expiring
after JournalRetentionDays; and the function's grant on it is exactly what the store calls."""

from __future__ import annotations

from typing import Any

from sweeper.settings import Settings
from sweeper.store import S3_ACTIONS

from .cfn import Template

BUCKET = "ManifestStoreBucket"
PREFIX = "ecr-sweeper"


def bucket(cfn: Template) -> dict[str, Any]:
    resource: dict[str, Any] = cfn["Resources"][BUCKET]
    return resource


def test_the_bucket_is_encrypted_private_and_unversioned(cfn: Template) -> None:
    props = bucket(cfn)["Properties"]
    encryption = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert props.get("VersioningConfiguration", {}).get("Status") != "Enabled"


def test_the_bucket_outlives_the_stack_since_it_holds_the_undo(cfn: Template) -> None:
    assert bucket(cfn)["DeletionPolicy"] == "Retain"
    assert bucket(cfn)["UpdateReplacePolicy"] == "Retain"


def test_the_bucket_refuses_every_request_without_tls(cfn: Template) -> None:
    policy = cfn["Resources"]["ManifestStoreBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": BUCKET}
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {"Fn::GetAtt": [BUCKET, "Arn"]} in statement["Resource"]
    assert {"Fn::Sub": "${ManifestStoreBucket.Arn}/*"} in statement["Resource"]


def test_the_journal_expires_after_journal_retention_days(cfn: Template) -> None:
    rules = bucket(cfn)["Properties"]["LifecycleConfiguration"]["Rules"]
    [journal] = [r for r in rules if r.get("Prefix") == f"{PREFIX}/journal/"]
    assert journal["Status"] == "Enabled"
    assert journal["ExpirationInDays"] == {"Ref": "JournalRetentionDays"}
    parameter = cfn["Parameters"]["JournalRetentionDays"]
    assert parameter["Default"] == Settings().journal_retention_days
    # Nothing else expires: a repository's manifests are kept as long as they exist.
    assert not [r for r in rules if "ExpirationInDays" in r and r is not journal]


def _store_statements(cfn: Template) -> list[dict[str, Any]]:
    role = cfn["Resources"]["SweeperFunctionRole"]["Properties"]
    return [
        statement
        for policy in role["Policies"]
        if "PolicyDocument" in policy
        for statement in policy["PolicyDocument"]["Statement"]
        if statement.get("Sid", "").startswith("ManifestStore")
    ]


def test_the_function_may_do_exactly_what_the_store_calls_in_its_prefix(cfn: Template) -> None:
    statements = _store_statements(cfn)
    actions = sorted(
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    )
    assert actions == sorted(S3_ACTIONS)
    objects = next(s for s in statements if s["Sid"] == "ManifestStoreObjects")
    assert objects["Resource"] == {"Fn::Sub": "${ManifestStoreBucket.Arn}/ecr-sweeper/*"}
    listing = next(s for s in statements if s["Sid"] == "ManifestStoreListing")
    assert listing["Resource"] == {"Fn::GetAtt": [BUCKET, "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": f"{PREFIX}/*"}}
