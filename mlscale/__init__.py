"""mlscale: keep ML workloads inside their promises with as few resources as that takes.

The core package holds what every engine shares: API base models, Kubernetes quantities
and durations, condition helpers, the local runtime helpers (cgroups, reports, live line)
and the ``mlscale`` command line. It imports no engine; the CLI loads engines lazily.
"""

__version__ = "0.1.0"

API_GROUP = "mlscale.dev"
API_VERSION = "v1alpha1"
API_GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"
