"""mlscale: keep ML workloads inside their promises with as few resources as that takes.

The core package holds what every engine shares: API base models, Kubernetes quantities
and durations, condition helpers, the local runtime helpers (cgroups, reports, live line)
and the ``mlscale`` command line. It imports no engine; the CLI loads engines lazily.
"""

__version__ = "0.1.0"

from typing import Final

API_GROUP: Final = "mlscale.dev"
API_VERSION: Final = "v1alpha1"
API_GROUP_VERSION: Final = "mlscale.dev/v1alpha1"
