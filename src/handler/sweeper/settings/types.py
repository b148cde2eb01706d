"""The settings type: `Settings`, `InvalidSettings`, the limits and the patterns fields must match.

The `*_PATTERN` expressions are public because the template's AllowedPatterns repeat them (template
tests check they are the same); `parse` compiles them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ..lifecycle import RetentionPolicy
from ..model import Pin, Scope
from ..plan import Policy

MAX_PATTERNS = 100
MAX_PINS = 10_000
MAX_HOURS = 24 * 365 * 10  # ten years: anything larger is a typo, not a policy
MAX_DELETIONS_LIMIT = 1_000_000
MAX_CONCURRENCY = 64
MAX_PIN_OBJECTS = 50  # each becomes an object ARN in the function's policy (10 KiB per role)
MAX_PARAMETER_PATH = 2048  # SSM's limit on a parameter name
MAX_RETENTION_POLICIES = 100
MAX_PARAMETER_PATHS = 10  # SSM pin paths of one invocation (the deployment's and a request's)
MAX_PIN_ROLES = 50  # each becomes a role ARN in the function's policy (10 KiB per role)
MAX_PIN_REGIONS = 30
MAX_EKS_CLUSTERS = 100
MIN_AGE_HOURS = 1.0  # buildx pushes children before their index: a younger child may be in flight

# An SSM hierarchy: "/" then names of letters, digits and _ . - separated by "/", no trailing "/".
# The template's PinParameterPath AllowedPattern is the same expression (a template test checks).
PARAMETER_PATH_PATTERN = r"^(/[a-zA-Z0-9_.-]+)+$"
# s3://bucket/key: a bucket name (3-63 of a-z 0-9 . -, starting and ending with a letter or digit)
# and a non-empty key without commas or white space (the environment variable is a list), without
# control characters, and without `*` or `?`: the template turns each URI into the object ARN the
# function may read, where they are IAM wildcards (`s3://bucket/*` would grant the whole bucket).
OBJECT_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^,\s*?\x00-\x1f\x7f]+$"
# key=value of a repository tag that opts a repository in (see sweeper.opt_in): letters, digits
# and _ . : / + @ - (no "=", no white space, no quotes: the template writes both into an IAM
# condition); the key may not start with "aws:", which AWS reserves. The template's
# RequiredRepositoryTag AllowedPattern is the same expression (a template test checks).
REQUIRED_TAG_PATTERN = r"^(?!aws:)[A-Za-z0-9_.:/+@-]{1,128}=[A-Za-z0-9_.:/+@-]{1,256}$"
# The template's RepositoryArnPattern AllowedPattern, but for the empty string (a test checks).
REPOSITORY_ARN_PATTERN = r"^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/[a-z0-9._/*?-]+$"
# An IAM role to assume in a workload account (sweeper.pins.places): no wildcards, since the
# template grants sts:AssumeRole on exactly these ARNs. The template's PinRoleArns
# AllowedPattern is this expression, comma-separated (a template test checks).
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=.@_/-]{1,512}$"
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"
# An EKS cluster name: letters, digits, '-' and '_', starting with a letter or digit, at most 100.
EKS_CLUSTER_PATTERN = r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$"
# An IAM role or user ARN, the only principals ECR takes as pull-time update exclusions (its API's
# pattern; a role's ARN includes its path).
PRINCIPAL_PATTERN = r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[\w+=,.@-]+(/[\w+=,.@-]+)*$"
# s3://bucket or s3://bucket/prefix: the manifest store (sweeper.store).
MANIFEST_STORE_PATTERN = (
    r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s*?\x00-\x1f\x7f]*[^/\s*?\x00-\x1f\x7f])?$"
)
MAX_JOURNAL_RETENTION_DAYS = 3650


class InvalidSettings(ValueError):
    """A request field or environment variable is wrong; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Settings:
    dry_run: bool = True
    repositories: tuple[str, ...] = ()  # glob patterns; empty means every repository
    # The deployment's patterns when a request gave its own: a repository must match both.
    within_repositories: tuple[str, ...] = ()
    exclude_repositories: tuple[str, ...] = ()
    min_age_hours: float = 72.0
    scope: Scope = Scope.ORPHANS
    pins: tuple[Pin, ...] = ()
    keep_pulled_within_days: float = 30.0
    max_deletions: int = 5000
    concurrency: int = 16  # docs/performance.md, "Defaults"
    # Pin sources (sweeper.pins); each is off unless configured.
    pin_parameter_path: tuple[str, ...] = ()  # SSM hierarchies, each read recursively
    pin_object_uris: tuple[str, ...] = ()  # s3://bucket/key objects
    pin_from_ecs: bool = False
    pin_from_lambda: bool = False
    # Workload accounts and regions (sweeper.pins.places): every source that reads AWS (SSM,
    # ECS, Lambda) reads the function's own account and each role's account, in the function's
    # own region and each of these.
    pin_role_arns: tuple[str, ...] = ()
    pin_regions: tuple[str, ...] = ()
    # Kubernetes on EKS (sweeper.pins.eks): pods and workloads of every cluster of every (account,
    # region), or only those named; `eks_skip_clusters` leaves named clusters out knowingly.
    pin_from_eks: bool = False
    eks_clusters: tuple[str, ...] = ()
    eks_skip_clusters: tuple[str, ...] = ()
    # Amazon Inspector's coverage (enhanced scanning): ECR images it shows in use (sweeper.pins).
    pin_from_inspector: bool = False
    # Retention (sweeper.lifecycle): ECR lifecycle rules the sweeper applies, pin-aware; the
    # first entry whose repository patterns match a repository applies to it. Needs scope orphans.
    retention: tuple[RetentionPolicy, ...] = ()
    # Read each swept repository's own ECR lifecycle policy and report what it will expire that
    # is pinned, recently pulled or tagged with a tag its rule does not select.
    audit_lifecycle_policies: bool = True
    # "key=value": only repositories carrying this tag are swept (sweeper.opt_in); "" means all.
    required_repository_tag: str = ""
    # The deployment's RepositoryArnPattern (environment only, never a request): the function's
    # IAM grants cover these repositories alone, so the run sweeps only them; "" means all.
    repository_arn_pattern: str = ""
    # The deployment's alone (REGISTER_PULL_TIME_EXCLUSION; no request field): register the
    # function's role as an ECR pull-time update exclusion when a run finds it missing
    # (sweeper.run.exclusion). Off for a registry whose exclusions are managed elsewhere.
    register_pull_time_exclusion: bool = True
    # The deployment's alone (SWEEPER_ROLE_ARN): the function's role, the principal its reads are
    # made as, which the template passes in ("" when not known: the exclusion is then unknown).
    sweeper_role_arn: str = ""
    # The deployment's alone (MANIFEST_STORE): s3://bucket[/prefix] of the manifest store
    # (sweeper.store); "" means none. The command takes a directory too (--manifest-store).
    manifest_store: str = ""
    # The deployment's alone (JOURNAL_RETENTION_DAYS): days the journal keeps what a run deleted,
    # the bytes with it (the bucket's lifecycle rule).
    journal_retention_days: int = 30

    @property
    def policy(self) -> Policy:
        return Policy(
            scope=self.scope,
            min_age=timedelta(hours=self.min_age_hours),
            keep_pulled_within=timedelta(days=self.keep_pulled_within_days),
        )

    @property
    def granted_repositories(self) -> str:
        """The repository-name glob of `repository_arn_pattern` (IAM's `*` and `?`, which
        fnmatch reads the same way, `*` crossing `/`), "*" when there is none."""
        return self.repository_arn_pattern.partition(":repository/")[2] or "*"

    @property
    def required_tag(self) -> tuple[str, str] | None:
        """The (key, value) a repository must be tagged with to be swept, if any."""
        if not self.required_repository_tag:
            return None
        key, _, value = self.required_repository_tag.partition("=")
        return key, value
