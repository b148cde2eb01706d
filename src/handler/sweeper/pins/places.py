"""Where the AWS-reading pin sources read: the function's own account and every workload account
of `pin_role_arns` (a role assumed with STS), each in the function's own region and every region
of `pin_regions`.

A central registry serves workloads that run in other accounts and regions; their ECS services,
Lambda functions and EKS clusters pin its images as surely as the registry account's own. Every
(source, account, region) is a source of its own, named `ecs@222222222222/eu-west-1`, so the
report says where each count came from and a failure names the account and region. A role that
cannot be assumed fails that source closed like any other unreadable source.

Credentials of an assumed role are kept while they are valid for more than `REFRESH_MARGIN` (by
`sweeper.clock`) and assumed again after: pins are read twice in a deleting run, and a long
command-line run may outlast an hour's credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import clock
from ..model import HeldTag, Pin
from .core import PinSource, PinSourceError, TagSource, error

ACTIONS = ("sts:AssumeRole",)  # the function's; GetCallerIdentity needs no permission
SESSION_NAME = "ecr-sweeper-pins"
REFRESH_MARGIN = timedelta(minutes=10)

# client(service, **boto3 client arguments): region_name and the aws_* credential arguments.
ClientFactory = Callable[..., Any]
# A source over one place, from a client factory bound to that place: client(service).
SourceMaker = Callable[[Callable[[str], Any]], PinSource]


@dataclass(frozen=True, slots=True)
class Place:
    """One account and region to read. `role_arn` empty: the function's own credentials."""

    region: str
    role_arn: str = ""

    @property
    def account(self) -> str:
        """The role's account ("" for the function's own, which Connections resolves)."""
        return self.role_arn.split(":")[4] if self.role_arn else ""


@dataclass(frozen=True, slots=True)
class _Assumed:
    arguments: dict[str, str]
    expires: datetime


class Connections:
    """Clients for every place: the function's own, or the role's assumed credentials."""

    def __init__(
        self,
        client: ClientFactory,
        role_arns: Sequence[str] = (),
        regions: Sequence[str] = (),
    ) -> None:
        self._client = client
        self._sts = client("sts")
        self.home_region: str = self._sts.meta.region_name
        self.regions = tuple(dict.fromkeys((self.home_region, *regions)))
        self.role_arns = tuple(role_arns)
        self._lock = threading.Lock()
        self._home_account = ""
        self._assumed: dict[str, _Assumed] = {}
        self._clients: dict[tuple[str, str, str], tuple[_Assumed | None, Any]] = {}

    @property
    def home_only(self) -> bool:
        """Only the function's own account and region: sources keep their plain names."""
        return not self.role_arns and self.regions == (self.home_region,)

    def places(self) -> list[Place]:
        return [Place(region, role) for role in ("", *self.role_arns) for region in self.regions]

    def label(self, place: Place) -> str:
        return f"{place.account or self.home_account()}/{place.region}"

    def home_account(self) -> str:
        with self._lock:
            if not self._home_account:
                try:
                    self._home_account = str(self._sts.get_caller_identity()["Account"])
                except (ClientError, BotoCoreError) as exc:
                    raise error("sts", "GetCallerIdentity", exc) from exc
            return self._home_account

    def client(self, place: Place, service: str, source: str) -> Any:
        """A client of `service` in `place`; `source` names the source if a role fails."""
        with self._lock:
            assumed = self._credentials(place, source) if place.role_arn else None
            key = (place.role_arn, place.region, service)
            cached = self._clients.get(key)
            if cached is not None and cached[0] is assumed:
                return cached[1]
            arguments = assumed.arguments if assumed is not None else {}
            made = self._client(service, region_name=place.region, **arguments)
            self._clients[key] = (assumed, made)
            return made

    def _credentials(self, place: Place, source: str) -> _Assumed:
        assumed = self._assumed.get(place.role_arn)
        if assumed is not None and assumed.expires - clock.now() > REFRESH_MARGIN:
            return assumed
        try:
            answer = self._sts.assume_role(RoleArn=place.role_arn, RoleSessionName=SESSION_NAME)
        except (ClientError, BotoCoreError) as exc:
            failed = error(source, f"sts:AssumeRole {place.role_arn}", exc)
            raise PinSourceError(source, failed.message) from exc
        credentials = answer["Credentials"]
        assumed = _Assumed(
            {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            },
            credentials["Expiration"],
        )
        self._assumed[place.role_arn] = assumed
        return assumed


class Placed:
    """A source read in one place: named `<source>@<account>/<region>`, every pin's and every
    failure's source saying where too."""

    def __init__(
        self, base: str, make: SourceMaker, place: Place, connections: Connections
    ) -> None:
        self.base = base
        self.place = place
        self.held: list[HeldTag] = []
        self._make = make
        self._connections = connections

    @property
    def name(self) -> str:
        return f"{self.base}@{self._connections.label(self.place)}"

    def read(self) -> list[Pin]:
        # The account is in the role's ARN: a role that fails is named before it is assumed.
        label = self._connections.label(self.place)
        where = f"{self.base}@{label}"
        source = self._make(lambda service: self._connections.client(self.place, service, where))
        try:
            found = source.read()
        except PinSourceError as exc:
            if exc.source == where:
                raise
            raise PinSourceError(f"{exc.source}@{label}", exc.message) from exc
        held = source.held if isinstance(source, TagSource) else []
        self.held = [replace(tag, source=f"{tag.source}@{label}") for tag in held]
        return [Pin(pin.digest, f"{pin.source}@{label}") for pin in found]
