"""Quality regulator: local epochs and clients per round so accuracy reaches its target on budget.

The reference trajectory is "linear-rounds": from the last accuracy ``a`` after round ``r``, the
remaining gap to the target ``A*`` is spread evenly over the remaining rounds ``R* - r``, so the
next round should gain ``v = (A* - a) / (R* - r)``. The regulator fits accuracy against the
cumulative local epochs trained so far (:mod:`hyperfl.learning_curve`) and inverts that curve
to find the epochs that gain ``v``.

What it minimises is client work, ``sum(clients * epochs)``. Measured on digits, accuracy after
a round depends on the cumulative local epochs far more than on how many clients trained them,
and one epoch per round gains at least as much per epoch as several (much more under label
skew, where long local training drifts apart). So the cheapest round is the fewest clients at
the fewest epochs, and the regulator spends more only when the round budget needs it:

- it holds the cheapest round while it learns the curve (a fit on the first few points
  misjudges the asymptote either way, and acting on it costs more than waiting);
- it raises epochs by at most one per round (a noisy fit then corrects itself before it has
  spent much), and drops them at once;
- it selects more clients only when even the most epochs fall short of the reference and the
  most epochs have already been tried for two rounds;
- it checks the curve against the pace measured over the latest rounds
  (:func:`hyperfl.learning_curve.measure_pace`): a power law is always decelerating, so on an
  S-shaped rise it says the target is far or out of reach while the measurements climb steadily
  towards it. When the measured pace reaches the target at the cheapest round within half the
  rounds left, the regulator holds the cheapest round whatever the curve says.

Pure: no I/O, no clock; the state serialises to a dict kept in the resource status.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from hyperfl.learning_curve import MAX_PREDICTED_ROUNDS, MIN_POINTS, PowerLawCurve, fit_power_law, measure_pace

OBSERVATION_LIMIT = 500
"""Observations kept in the state (the fit needs the early rounds, so this is not a short window)."""

NOISE_WINDOW = 8
"""Recent rounds whose scatter around the curve sets how far below the target the stop is expected."""
MIN_NOISE = 0.002
"""Smallest scatter assumed (accuracy)."""
MAX_NOISE = 0.05
"""Largest scatter assumed (accuracy)."""
MAX_MARGIN_ABOVE = 0.02
"""Largest margin aimed above the target when the budget is tight (accuracy)."""
CROSSING_ROUNDS = 10
"""Spare rounds at the cheapest pace from which the stop is expected one scatter width below the target."""
LEARNING_FRACTION = 0.2
"""Share of the round budget spent learning the curve at the cheapest round before acting on it."""
LEARNING_ROUNDS_MAX = 8
"""Most rounds spent learning the curve, whatever the budget."""
EPOCH_STEP = 1
"""Most local epochs added from one round to the next."""
PACE_SLACK = 0.5
"""The measured pace is acted on when it reaches the target within this share of the rounds left."""
MAX_EPOCHS_HELD = 2
"""Rounds at the most epochs before the regulator selects more clients."""


@dataclass(frozen=True)
class RegulatorSettings:
    """Limits and target of the quality regulator.

    Attributes:
        target: Accuracy to reach (``A*``).
        rounds_max: Round budget (``R*``).
        epochs_min: Fewest local epochs per round.
        epochs_max: Most local epochs per round.
        clients_max: Clients per round asked for in the spec (never exceeded).
        clients_min: Fewest clients per round the regulator may fall back to when ahead.
        ahead_ratio: The fewest epochs count as "ahead" when the curve says they gain this many
            times the reference gain.
        spare_rounds: Rounds kept in reserve: the reference aims this many rounds before the
            budget's end (while more than twice as many remain), so noise does not miss it.
    """

    target: float
    rounds_max: int
    epochs_min: int
    epochs_max: int
    clients_max: int
    clients_min: int
    ahead_ratio: float = 1.5
    spare_rounds: int = 1

    def __post_init__(self) -> None:
        """Check the ranges."""
        if not 1 <= self.epochs_min <= self.epochs_max:
            raise ValueError(f"need 1 <= epochs_min <= epochs_max, got {self.epochs_min}..{self.epochs_max}")
        if not 1 <= self.clients_min <= self.clients_max:
            raise ValueError(f"need 1 <= clients_min <= clients_max, got {self.clients_min}..{self.clients_max}")
        if self.rounds_max < 1:
            raise ValueError(f"rounds_max must be at least 1, got {self.rounds_max}")

    @staticmethod
    def default_clients_min(clients_max: int) -> int:
        """Fewest clients the regulator falls back to: half the asked count rounded down, at least two when possible.

        Measured on digits with real TFF: two clients at one epoch reached Dirichlet(0.5) targets
        with about half the client-epochs of the best fixed setting.
        """
        return max(min(2, clients_max), clients_max // 2)


@dataclass(frozen=True)
class Observation:
    """One finished round as the regulator sees it.

    Attributes:
        round: Round number, from 1.
        accuracy: Evaluated accuracy after the round.
        epochs: Local epochs the round trained.
        clients: Clients the round selected.
    """

    round: int
    accuracy: float
    epochs: int
    clients: int


@dataclass
class RegulatorState:
    """What the regulator remembers between rounds (serialisable to the resource status).

    Attributes:
        observations: Finished rounds, oldest first.
    """

    observations: list[Observation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for the resource status."""
        return {"observations": [asdict(o) for o in self.observations]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegulatorState:
        """Rebuild a state stored with :meth:`to_dict`."""
        return cls(observations=[Observation(**o) for o in data.get("observations", [])])


@dataclass(frozen=True)
class RoundPlan:
    """What the next round should do, and why.

    Attributes:
        round: The round this plan is for.
        clients: Clients to select.
        epochs: Local epochs each client trains.
        required_gain: Accuracy the reference asks this round to add (``None`` before any round).
        predicted_gain: Accuracy the curve expects these epochs to add (``None`` without a curve).
        predicted_rounds_to_target: Round at which the curve, at this pace, reaches the target.
        target_at_risk: The prediction exceeds the round budget even at the chosen effort.
        curve: The fitted accuracy-vs-cumulative-epochs curve, if any.
        reason: One word for the decision (for logs and events).
    """

    round: int
    clients: int
    epochs: int
    required_gain: float | None
    predicted_gain: float | None
    predicted_rounds_to_target: int | None
    target_at_risk: bool
    curve: PowerLawCurve | None
    reason: str


class QualityRegulator:
    """Chooses local epochs and clients per round to follow the linear-rounds reference."""

    def __init__(self, settings: RegulatorSettings, state: RegulatorState | None = None) -> None:
        """Create a regulator.

        Args:
            settings: Target, budget and actuator limits.
            state: State to resume from (a fresh one when ``None``).
        """
        self.settings = settings
        self.state = state if state is not None else RegulatorState()

    def observe(self, round_: int, accuracy: float, epochs: int, clients: int) -> None:
        """Record a finished round (repeated or older rounds replace what was recorded)."""
        kept = [o for o in self.state.observations if o.round < round_]
        kept.append(Observation(round=round_, accuracy=accuracy, epochs=epochs, clients=clients))
        self.state.observations = kept[-OBSERVATION_LIMIT:]

    def _cumulative_epochs(self) -> list[float]:
        total = 0.0
        out = []
        for o in self.state.observations:
            total += o.epochs
            out.append(total)
        return out

    def learning_rounds(self) -> int:
        """Rounds the regulator holds the cheapest round before it trusts the fitted curve.

        Measured on digits, a power law through the first five to eight points overstates the
        way to go several times over in most runs (the early rise is S-shaped, not concave), so
        acting on it early buys epochs that are not needed. A fifth of the budget, at most
        :data:`LEARNING_ROUNDS_MAX`, leaves the rest to catch up when the curve is truly slow.
        """
        s = self.settings
        return min(max(MIN_POINTS, round(LEARNING_FRACTION * s.rounds_max)), LEARNING_ROUNDS_MAX)

    def pace_points(self) -> int:
        """Rounds per window of the measured pace (two windows are compared to see it slow down)."""
        return max(MIN_POINTS, self.learning_rounds() // 2)

    def _pace_rounds(self, efforts: list[float]) -> int | None:
        """Rounds the measured recent pace needs to the target at the fewest epochs; ``None`` when out of reach."""
        s = self.settings
        pace = measure_pace(efforts, [o.accuracy for o in self.state.observations], self.pace_points())
        if pace is None:
            return None
        effort = pace.effort_for_gain(s.target - pace.level)
        if effort is None:
            return None
        return max(math.ceil(effort / s.epochs_min - 1e-6), 1)

    def _learning_clients(self) -> int:
        # A budget too short to learn the curve and then catch up has no slack to save on.
        s = self.settings
        return s.clients_min if s.rounds_max > 2 * self.learning_rounds() else s.clients_max

    def plan(self, rounds_left_by_time: int | None = None) -> RoundPlan:
        """Plan the next round.

        Args:
            rounds_left_by_time: Rounds the wall-clock deadline still leaves room for (from the
                mean round duration), or ``None`` when there is no deadline. The reference then
                aims at the earlier of the round budget and the deadline.

        Returns:
            The plan. Planning changes no state: the same observations give the same plan.
        """
        s = self.settings
        obs = self.state.observations
        last_round = obs[-1].round if obs else 0
        next_round = last_round + 1
        if not obs:
            return RoundPlan(next_round, self._learning_clients(), s.epochs_min, None, None, None, False, None, "start")

        horizon = s.rounds_max
        if rounds_left_by_time is not None:
            horizon = min(horizon, last_round + max(rounds_left_by_time, 1))
        remaining = max(horizon - last_round, 1)
        if remaining > 2 * s.spare_rounds:
            remaining -= s.spare_rounds
        efforts = self._cumulative_epochs()
        curve = fit_power_law(efforts, [o.accuracy for o in obs])
        if curve is None:
            # Too few rounds to fit: hold the cheapest round and learn the curve's shape.
            gain = (s.target - obs[-1].accuracy) / remaining
            return RoundPlan(
                next_round, self._learning_clients(), s.epochs_min, gain, None, None, False, None, "learning"
            )

        effort_now = efforts[-1]
        # The curve's value, not the last (noisy) measurement, is where the trajectory starts.
        accuracy_now = curve.accuracy_at(effort_now)
        # The run stops at the first round whose *measured* accuracy reaches the target, and the
        # measurements scatter around the curve. When the cheapest rounds would bring the curve
        # to one scatter width below the target well before the horizon, many draws remain and
        # the stop typically comes there: aim there (aiming at or above the target overstated
        # the way to go several times over on digits, and bought epochs early). When that slack
        # shrinks, the aim rises to one scatter width above the target, so that a trajectory
        # planned to end at the horizon does not miss it half the time.
        recent = obs[-NOISE_WINDOW:]
        residuals = [o.accuracy - curve.accuracy_at(e) for o, e in zip(recent, efforts[-NOISE_WINDOW:], strict=True)]
        noise = min(max(statistics.pstdev(residuals), MIN_NOISE), MAX_NOISE)
        effort_low = curve.effort_for(s.target - noise)
        slack = -math.inf if effort_low is None else horizon - last_round - (effort_low - effort_now) / s.epochs_min
        ease = 2.0 * min(max(slack / CROSSING_ROUNDS, 0.0), 1.0) - 1.0  # -1 no slack .. +1 ample
        aim = s.target - noise * ease if ease >= 0 else s.target - min(noise, MAX_MARGIN_ABOVE) * ease
        if curve.effort_for(aim) is None:
            aim = s.target
        required = (aim - accuracy_now) / remaining
        needed = curve.effort_for(accuracy_now + required)
        effort_target = curve.effort_for(aim)
        # Linear-rounds alone front-loads too little work on a saturating curve: the rounds it
        # saves early cost more epochs late. The constant pace that reaches the target exactly
        # at the horizon is a floor under it.
        epochs_reference = math.inf if needed is None else needed - effort_now
        epochs_pace = math.inf if effort_target is None else (effort_target - effort_now) / remaining
        epochs_raw = max(epochs_reference, epochs_pace)

        # Predict at the pace the regulator holds on average (fractional epochs, within limits):
        # rounding dithers single rounds between two epoch counts, the pace does not.
        pace = min(max(epochs_raw, float(s.epochs_min)), float(s.epochs_max))
        predicted: int | None
        if effort_target is None:
            predicted = None
        else:
            rounds_more = max(math.ceil((effort_target - effort_now) / pace - 1e-6), 1)
            predicted = min(last_round + rounds_more, MAX_PREDICTED_ROUNDS)
        # The measured pace is the second predictor; the more optimistic one is reported, and
        # acted on while it leaves the budget ample slack to catch up if it proves wrong.
        pace_rounds = self._pace_rounds(efforts)
        if pace_rounds is not None and (predicted is None or last_round + pace_rounds < predicted):
            predicted = last_round + pace_rounds
        on_pace = pace_rounds is not None and pace_rounds <= PACE_SLACK * (horizon - last_round)

        if len(obs) < self.learning_rounds():
            # A curve through the first few points misjudges the asymptote (either way): report
            # its prediction, but neither act on it nor raise an alarm yet.
            gain = curve.accuracy_at(effort_now + s.epochs_min) - accuracy_now
            return RoundPlan(
                next_round, self._learning_clients(), s.epochs_min, required, gain, predicted, False, curve, "learning"
            )

        last = obs[-1]
        if math.isfinite(epochs_raw):
            epochs = min(max(math.floor(epochs_raw + 0.5), s.epochs_min), s.epochs_max)
        else:
            epochs = s.epochs_max
        # Rise gradually: a fit that overstates the way to go corrects itself within a few
        # rounds, before a jump to the most epochs would have spent the savings.
        epochs = max(min(epochs, last.epochs + EPOCH_STEP), s.epochs_min)
        gain = curve.accuracy_at(effort_now + epochs) - accuracy_now

        clients = s.clients_min
        held = len(obs) >= MAX_EPOCHS_HELD and all(o.epochs >= s.epochs_max for o in obs[-MAX_EPOCHS_HELD:])
        if on_pace and epochs_raw > s.epochs_min + 0.5:
            # The curve says behind, the measurements say the cheapest round gets there in time.
            epochs = s.epochs_min
            gain = curve.accuracy_at(effort_now + epochs) - accuracy_now
            reason = "on-pace"
        elif epochs_raw > s.epochs_max:
            reason = "short"
            # More clients are the last resort: they cost as much as epochs and gain less.
            clients = min(last.clients + 1, s.clients_max) if held else last.clients
            clients = max(clients, s.clients_min)
        elif epochs_raw > s.epochs_min + 0.5:
            reason = "behind"
        elif epochs_raw * s.ahead_ratio <= s.epochs_min:
            reason = "ahead"
        else:
            reason = "on-track"
        at_risk = predicted is None or predicted > horizon
        return RoundPlan(next_round, clients, epochs, required, gain, predicted, at_risk, curve, reason)
