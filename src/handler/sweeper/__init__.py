"""ecr-sweeper: a reference-aware garbage collector for Amazon ECR.

Pure core (model, manifests, plan, settings) behind a thin AWS edge (registry, run).
"""

__version__ = "0.1.0"
