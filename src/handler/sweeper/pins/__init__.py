"""Digest pins from where they live: SSM Parameter Store, S3 objects, ECS, Lambda and EKS.

Production pulls by digest, so the sweeper reads those digests itself before it plans. One module
per source (`ssm`, `s3`, `ecs`, `lambda_`, `eks`); `core` holds what they share (the `PinSource`
shape, `PinSourceError`, paging, a bounded pool) and `collect`; `places` reads the AWS sources in
every workload account and region. Each source module declares the IAM actions it calls as
`ACTIONS`.

This package is an edge, like registry.py: it receives boto3 clients (built by app.py with
`registry.client_config()`) and returns the core's `Pin`s. Every listing follows its paginator.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from .. import clock
from ..settings import Settings
from . import ecs, eks, inspector, lambda_, places, s3, ssm
from .core import (
    DEFAULT_WORKERS,
    PinSource,
    PinSourceError,
    StaticPins,
    TagSource,
    collect,
    held_tags,
)
from .ecs import DESCRIBE_TASKS_BATCH, EcsPins
from .eks import EksPins
from .inspector import InspectorPins
from .lambda_ import LambdaPins
from .places import ClientFactory, Connections, Placed, SourceMaker
from .s3 import MAX_OBJECT_BYTES, ObjectPins, decode_text
from .ssm import ParameterPins

__all__ = [
    "DEFAULT_WORKERS",
    "DESCRIBE_TASKS_BATCH",
    "ECS_ACTIONS",
    "EKS_ACTIONS",
    "INSPECTOR_ACTIONS",
    "LAMBDA_ACTIONS",
    "MAX_OBJECT_BYTES",
    "REQUIRED_IAM_ACTIONS",
    "S3_ACTIONS",
    "SSM_ACTIONS",
    "SSM_KMS_ACTIONS",
    "STS_ACTIONS",
    "EcsPins",
    "EksPins",
    "InspectorPins",
    "LambdaPins",
    "ObjectPins",
    "ParameterPins",
    "PinSource",
    "PinSourceError",
    "StaticPins",
    "TagSource",
    "collect",
    "decode_text",
    "held_tags",
    "sources",
]

# What each source calls, and so the IAM it needs; tests/template/test_pin_iam.py compares these
# with the template's conditional policy statements.
SSM_ACTIONS = ssm.ACTIONS
SSM_KMS_ACTIONS = ssm.KMS_ACTIONS
S3_ACTIONS = s3.ACTIONS
ECS_ACTIONS = ecs.ACTIONS
LAMBDA_ACTIONS = lambda_.ACTIONS
STS_ACTIONS = places.ACTIONS
EKS_ACTIONS = eks.ACTIONS
INSPECTOR_ACTIONS = inspector.ACTIONS
REQUIRED_IAM_ACTIONS: Mapping[str, tuple[str, ...]] = {
    "ssm": tuple(sorted(SSM_ACTIONS + SSM_KMS_ACTIONS)),
    "s3": S3_ACTIONS,
    "ecs": ECS_ACTIONS,
    "lambda": LAMBDA_ACTIONS,
    "sts": STS_ACTIONS,
    "eks": EKS_ACTIONS,
    "inspector": INSPECTOR_ACTIONS,
}


def sources(
    settings: Settings, client: ClientFactory, now: datetime | None = None
) -> list[PinSource]:
    """The configured sources, in a fixed order. `client(service, **arguments)` makes a boto3
    client (`region_name` and `aws_*` credentials among the arguments, for other places).

    With workload roles or more regions, each AWS-reading source is one per place (account,
    region), named `<source>@<account>/<region>` (see places.py); S3 objects, named by their
    URIs, are read once with the function's own credentials, and so is Inspector, which covers
    the registry's account: its pull window ends at `now` (the run's; default sweeper.clock).
    """
    configured: list[PinSource] = []
    if settings.pins:
        configured.append(StaticPins(settings.pins))
    reading = (
        settings.pin_parameter_path
        or settings.pin_from_ecs
        or settings.pin_from_lambda
        or settings.pin_from_eks
    )
    connections = (
        Connections(client, settings.pin_role_arns, settings.pin_regions) if reading else None
    )

    def each(base: str, make: SourceMaker) -> None:
        assert connections is not None
        if connections.home_only:
            configured.append(make(client))
        else:
            configured.extend(
                Placed(base, make, place, connections) for place in connections.places()
            )

    for path in settings.pin_parameter_path:
        each("ssm", _parameters(path))
    if settings.pin_object_uris:
        configured.append(ObjectPins(client("s3"), settings.pin_object_uris))
    if settings.pin_from_ecs:
        each("ecs", lambda c: EcsPins(c("ecs"), workers=settings.concurrency))
    if settings.pin_from_lambda:
        each("lambda", lambda c: LambdaPins(c("lambda"), workers=settings.concurrency))
    if settings.pin_from_eks:
        each(
            "eks",
            lambda c: EksPins(
                c,
                settings.eks_clusters,
                settings.eks_skip_clusters,
                workers=settings.concurrency,
            ),
        )
    if settings.pin_from_inspector:
        configured.append(
            InspectorPins(
                client("inspector2"),
                now or clock.now(),
                settings.policy.keep_pulled_within,
            )
        )
    return configured


def _parameters(path: str) -> SourceMaker:
    return lambda client: ParameterPins(client("ssm"), path)
