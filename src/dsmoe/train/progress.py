"""How far a run is through its budget: the learning-rate schedule's position, and when training is done.

With a time budget (train.time_budget_min) the position is the larger of the step reached and the share of
the budget spent, in steps, so a machine slower than the run was sized for still ends on the annealed
learning rate instead of being cut off mid-schedule. The training time is saved in checkpoints: a resumed run
continues from the same position. Without a time budget the position is the step itself.
"""

from __future__ import annotations

from time import perf_counter

from dsmoe.config.train_config import TrainConfig


class TrainingProgress:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.earlier_s = 0.0  # training time of the sessions before a resume
        self.started: float | None = None  # when this session's training began

    def start(self) -> None:
        self.started = perf_counter()

    def elapsed_s(self) -> float:
        """Seconds of training so far, over all sessions of the run."""
        return self.earlier_s + (perf_counter() - self.started if self.started is not None else 0.0)

    def time_share(self) -> float:
        """The share of the time budget spent (0 without one)."""
        budget_min = self.cfg.time_budget_min
        return 0.0 if budget_min is None else self.elapsed_s() / (60 * budget_min)

    def position(self, step: int) -> int | float:
        """Where the schedule is after `step` optimizer steps, in steps; train.steps and beyond: training is done."""
        return step if self.cfg.time_budget_min is None else max(step, self.cfg.steps * self.time_share())

    def out_of_time(self) -> bool:
        return self.time_share() >= 1

    def state_dict(self) -> dict:
        return {"elapsed_s": self.elapsed_s()}

    def load_state_dict(self, state: dict) -> None:
        self.earlier_s, self.started = state["elapsed_s"], None
