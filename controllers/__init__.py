"""The mlscale operator: ``kopf run -m controllers`` (or ``mlscale operator``).

Importing this package registers every handler: the startup settings, then one module
per resource kind holding only decorators that hand off to the service functions.
This is the only package that talks to the Kubernetes API.
"""

from controllers import deadlinejob, federatedtraining, inferenceservice, startup

__all__ = ["deadlinejob", "federatedtraining", "inferenceservice", "startup"]
