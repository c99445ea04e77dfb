"""TFF training of the global model, run inside the trainer process (see :mod:`hyperfl.trainer_process`).

Two federations share one interface (``restore``, ``run_round``):

- :class:`SimulatedFederation` runs FedAvg with ``tff.learning`` over every client inside this
  process. Local epochs vary per round without rebuilding the computation: a client dataset
  repeated ``epochs`` times is ``epochs`` local passes.
- :class:`RemoteFederation` sends the global weights to client workers over HTTP
  (:mod:`hyperfl.worker`), drops the clients that miss the round timeout, and averages the
  returned weights, weighted by examples, with a TFF federated computation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from hyperfl.checkpoint import Weights, load_checkpoint, save_checkpoint
from hyperfl.data import FEATURES, load_federated_digits
from hyperfl.federation import FederationConfig, RoundResult
from hyperfl.model_builder import build_model, evaluate


class _Federation:
    """Data, evaluation model and checkpoints shared by both federations."""

    def __init__(self, config: FederationConfig) -> None:
        import tensorflow as tf

        tf.keras.utils.set_random_seed(config.seed)
        self.config = config
        self.data = load_federated_digits(
            config.clients, config.partition, config.alpha, config.evaluation_fraction, config.seed
        )
        self.eval_model, self.loss = build_model(config.builder)
        self.checkpoint_dir = Path(config.checkpoint_dir)

    def _finish(self, round_: int, weights: Weights, answered: list[int], examples: int, t0: float) -> RoundResult:
        self.eval_model.set_weights(weights)
        accuracy, loss = evaluate(self.eval_model, self.loss, self.data.eval_x, self.data.eval_y)
        path = save_checkpoint(self.checkpoint_dir, round_, weights)
        return RoundResult(accuracy, loss, answered, examples, time.monotonic() - t0, str(path))


class SimulatedFederation(_Federation):
    """FedAvg with ``tff.learning`` over clients simulated in this process."""

    def __init__(self, config: FederationConfig) -> None:
        """Build the TFF learning process for the configured model and data."""
        import tensorflow as tf
        import tensorflow_federated as tff

        super().__init__(config)
        input_spec = (
            tf.TensorSpec([None, FEATURES], tf.float32),
            tf.TensorSpec([None], tf.int32),
        )

        def model_fn() -> Any:
            model, loss = build_model(config.builder)
            return tff.learning.models.from_keras_model(
                model, input_spec=input_spec, loss=loss, metrics=[tf.keras.metrics.SparseCategoricalAccuracy()]
            )

        self._tff = tff
        self.process = tff.learning.algorithms.build_weighted_fed_avg(
            model_fn,
            client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=config.learning_rate),
            server_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=config.server_learning_rate),
        )
        self.state = self.process.initialize()
        # Tracing model_fn in graph mode swaps Keras' model classes to their TF1 variants for
        # every model object; building one eagerly swaps them back. The rebuilt (seeded) model
        # also gives the same initial weights as the remote federation starts from.
        tf.keras.utils.set_random_seed(config.seed)
        self.eval_model, self.loss = build_model(config.builder)
        self._set_weights(self.eval_model.get_weights())

    def _weights(self) -> Weights:
        weights = self.process.get_model_weights(self.state)
        return [np.asarray(w, dtype=np.float32) for w in [*weights.trainable, *weights.non_trainable]]

    def _set_weights(self, weights: Weights) -> None:
        current = self.process.get_model_weights(self.state)
        n = len(current.trainable)
        new = self._tff.learning.models.ModelWeights(trainable=list(weights[:n]), non_trainable=list(weights[n:]))
        self.state = self.process.set_model_weights(self.state, new)

    def restore(self, path: str) -> int:
        """Load the global model from a checkpoint; returns the round it was taken after."""
        round_, weights = load_checkpoint(Path(path))
        self._set_weights(weights)
        return round_

    def run_round(self, round_: int, clients: Sequence[int], epochs: int, timeout_s: float | None) -> RoundResult:
        """One FedAvg round over ``clients`` with ``epochs`` local epochs (no stragglers in simulation)."""
        import tensorflow as tf

        del timeout_s  # simulated clients all answer
        t0 = time.monotonic()
        datasets = []
        examples = 0
        for client in clients:
            x, y = self.data.clients[client]
            examples += len(y) * epochs
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            ds = ds.shuffle(len(y), seed=self.config.seed * 100_003 + round_ * 1009 + client)
            datasets.append(ds.repeat(epochs).batch(self.config.batch_size))
        output = self.process.next(self.state, datasets)
        self.state = output.state
        return self._finish(round_, self._weights(), list(clients), examples, t0)


def build_weighted_mean(example: Weights) -> Any:
    """A TFF computation averaging client weight lists shaped like ``example``, weighted per client."""
    import tensorflow_federated as tff

    struct = tff.StructType([tff.TensorType(np.float32, w.shape) for w in example])

    at_clients = tff.FederatedType(struct, tff.CLIENTS)
    weight_at_clients = tff.FederatedType(np.float32, tff.CLIENTS)

    @tff.federated_computation(at_clients, weight_at_clients)  # type: ignore[untyped-decorator]
    def weighted_mean(values: Any, weights: Any) -> Any:
        return tff.federated_mean(values, weight=weights)

    return weighted_mean


class RemoteFederation(_Federation):
    """FedAvg whose clients are HTTP workers; the weighted average is a TFF computation."""

    def __init__(self, config: FederationConfig) -> None:
        """Connect to the configured workers and build the aggregation computation."""
        super().__init__(config)
        if not config.workers:
            raise ValueError("a remote federation needs at least one worker URL")
        self.weights: Weights = [np.asarray(w, dtype=np.float32) for w in self.eval_model.get_weights()]
        self.mean = build_weighted_mean(self.weights)
        self.pool = ThreadPoolExecutor(max_workers=max(4, config.clients))

    def restore(self, path: str) -> int:
        """Load the global model from a checkpoint; returns the round it was taken after."""
        round_, self.weights = load_checkpoint(Path(path))
        return round_

    def worker_for(self, client: int) -> str:
        """The worker that serves ``client`` (clients are spread round-robin over workers)."""
        return self.config.workers[client % len(self.config.workers)]

    def run_round(self, round_: int, clients: Sequence[int], epochs: int, timeout_s: float | None) -> RoundResult:
        """One round: ask every client's worker, keep those that answer within ``timeout_s``, average."""
        from hyperfl.worker import request_update

        t0 = time.monotonic()
        body = {
            "round": round_,
            "epochs": epochs,
            "batch_size": self.config.batch_size,
            "learning_rate": self.config.learning_rate,
            "weights": [w.tolist() for w in self.weights],
        }
        futures = {
            self.pool.submit(request_update, self.worker_for(c), {**body, "client": c}, timeout_s): c for c in clients
        }
        done, _ = wait(futures, timeout=timeout_s)
        updates: dict[int, tuple[Weights, int]] = {}
        for future in done:
            try:
                updates[futures[future]] = future.result()
            except OSError:
                continue  # an unreachable or failing worker is a straggler of this round
        answered = sorted(updates)
        if answered:
            averaged = self.mean([updates[c][0] for c in answered], [float(updates[c][1]) for c in answered])
            lr = self.config.server_learning_rate
            self.weights = [
                (w + lr * (np.asarray(a, dtype=np.float32) - w)).astype(np.float32)
                for w, a in zip(self.weights, averaged, strict=True)
            ]
        examples = sum(n for _, n in updates.values())
        return self._finish(round_, self.weights, answered, examples, t0)

    def close(self) -> None:
        """Stop waiting for stragglers' threads."""
        self.pool.shutdown(wait=False, cancel_futures=True)
