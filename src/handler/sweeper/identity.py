"""Who the command runs as: the operator's principal, from STS and IAM (an edge, like `registry`).

ECR takes an IAM role or user ARN as a pull-time update exclusion. STS names an assumed role
without the role's path (`arn:aws:sts::<account>:assumed-role/<name>/<session>`); its full ARN,
which registering needs, comes from `iam:GetRole`.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from .registry import api_error


def caller_arn(session: boto3.Session, config: Any = None) -> str:
    """The ARN STS gives the session's credentials (RegistryError when it cannot tell)."""
    try:
        answer = session.client("sts", config=config).get_caller_identity()
    except (ClientError, BotoCoreError) as exc:
        raise api_error("GetCallerIdentity", exc) from exc
    return str(answer["Arn"])


def role_arn(session: boto3.Session, name: str, config: Any = None) -> str:
    """The full ARN (path included) of the role `name` (RegistryError when IAM will not say)."""
    try:
        answer = session.client("iam", config=config).get_role(RoleName=name)
    except (ClientError, BotoCoreError) as exc:
        raise api_error("GetRole", exc) from exc
    return str(answer["Role"]["Arn"])
