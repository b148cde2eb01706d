"""Fixtures of the template tests: the SAM template and its CloudFormation translation."""

from __future__ import annotations

import pytest

from conftest import LambdaContext

from .cfn import Template, load_sam, translate


@pytest.fixture(scope="session")
def sam() -> Template:
    return load_sam()


@pytest.fixture(scope="session")
def cfn(sam: Template) -> Template:
    return translate(sam)


# The function's name as the deployed stack would give it; the template tests resolve
# `${SweeperFunction}` to it, so what the dashboard shows and what the handler emits must agree.
FUNCTION_NAME = "ecr-sweeper-test-SweeperFunction-AbC123dEf456"
LOG_GROUP = "/aws/lambda/ecr-sweeper-test-sweeper"


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext(
        function_name=FUNCTION_NAME,
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}",
    )
