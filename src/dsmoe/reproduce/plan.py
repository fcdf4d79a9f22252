"""What one `dsmoe reproduce` invocation runs: a suite at a scale, its seeds, data and budget, and where."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from dsmoe.data.text_files import corpus_files
from dsmoe.reproduce.scales import Scale, scale_named
from dsmoe.reproduce.suite_dir import SEED_PREFIX
from dsmoe.reproduce.suites import Suite, suite_named
from dsmoe.reproduce.variants import Variant
from dsmoe.runs import RunConfig
from dsmoe.runs.run_config import Override
from dsmoe.runtime.devices import resolve_device

BUDGETS = ("steps", "minutes")


@dataclass(frozen=True)
class Plan:
    """Every variant of `suite` at `scale`, once per seed 0 .. seeds-1, on `data`, each for the same optimizer
    steps (budget "steps") or the same minutes of training on this machine (budget "minutes", steps sized to
    it), in out/<variant>/seed<k>, each on `device` (its train.device; the runs' evaluations and the probe run
    there too). `overrides`: --set assignments applied to every run last."""

    suite: Suite
    scale: Scale
    seeds: int
    data: str
    budget: str
    budget_value: float
    out: Path
    overrides: tuple[Override, ...] = field(default_factory=tuple)
    device: str = "auto"

    @classmethod
    def make(cls, suite: str, scale: str = "tiny", seeds: int = 1, data: str | None = None,
             budget: str = "steps", budget_value: float | None = None, out: str | Path | None = None,
             overrides: tuple[Override, ...] = (), device: str | torch.device = "auto") -> Plan:
        """Check every argument (naming it) before any work."""
        resolve_device(device)  # a device not here is refused before any work
        device = str(device)
        chosen_suite, chosen_scale = suite_named(suite), scale_named(scale)
        if budget not in BUDGETS:
            raise ValueError(f"--budget {budget!r} must be one of {', '.join(BUDGETS)}")
        if not isinstance(seeds, int) or seeds < 1:
            raise ValueError(f"--seeds {seeds!r} must be an integer >= 1")
        value = budget_value if budget_value is not None else \
            (chosen_scale.steps if budget == "steps" else chosen_scale.minutes)
        if not value > 0 or (budget == "steps" and value != int(value)):
            raise ValueError(f"the budget {value!r} must be a positive {'integer' if budget == 'steps' else 'number'}"
                             f" of {budget}")
        out = Path(out) if out is not None else Path("runs") / "reproduce" / f"{suite}-{scale}"
        plan = cls(chosen_suite, chosen_scale, seeds, data or chosen_suite.data, budget,
                   int(value) if budget == "steps" else float(value), out, tuple(overrides), device)
        for variant in plan.variants:  # a bad override or layout fails here, naming its field
            plan.run_config(variant, 0)
        corpus_files(plan.data)  # a missing corpus too, before the first run starts
        return plan

    @property
    def variants(self) -> list[Variant]:
        return self.suite.variants(self.scale)

    def run_dir(self, variant: Variant, seed: int) -> Path:
        return self.out / variant.name / f"{SEED_PREFIX}{seed}"

    def run_config(self, variant: Variant, seed: int) -> RunConfig:
        """The variant's run: the scale's base and recipe, the variant's changes, this seed (weights and data
        order: every variant of a seed reads the same tokens in the same order), the budget, the overrides."""
        train = {**self.scale.train, "batch_size": self.scale.batch_size, **variant.train, "seed": seed,
                 "device": self.device}
        if self.budget == "steps":
            train["steps"] = self.budget_value
        else:  # sized to the minutes once measured (runner.fit), the clock stops it either way
            train.update(steps=self.scale.steps, time_budget_min=self.budget_value)
        values = {"model": {**self.scale.model, **variant.model},
                  "data": {"path": self.data, "seq_len": self.scale.seq_len}, "train": train}
        return RunConfig.from_dict(values, self.overrides)

    def command(self) -> str:
        parts = [f"dsmoe reproduce {self.suite.name} --scale {self.scale.name} --seeds {self.seeds}",
                 f"--data {self.data} --budget {self.budget}"]
        parts += [f"--{self.budget} {self.budget_value:g}"] if self.budget_value != (
            self.scale.steps if self.budget == "steps" else self.scale.minutes) else []
        parts += [f"--set {override}" for override in self.overrides if isinstance(override, str)]
        return " ".join(parts + [f"--out {self.out}"])
