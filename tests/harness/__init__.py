"""ECR test harness: moto with ECR's real behaviour restored, and OCI manifest builders.

from harness import FakeRegistry, oci

with FakeRegistry() as reg:
    digest = reg.push("app", oci.image_manifest(seed=1), tags=["v1"])
"""

from . import oci
from .ecr import BuildxPush, FakeRegistry

__all__ = ["BuildxPush", "FakeRegistry", "oci"]
