"""InferenceService engine: keeps an interactive model inside its latency SLO with the fewest cores.

Parts, in the order of ARCHITECTURE.md: the resource model (``api``), the pure control
laws (``latency``, ``regulator``, ``scaling``, ``dispatcher``, ``arbiter``), the ports
(``ports``) with their local adapter (``replicas``), the loop (``loop``), and the real
processes that serve traffic on 127.0.0.1 (``server``, ``router``, ``loadgen``).
"""
