"""hyperfl engine."""
