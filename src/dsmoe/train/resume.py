"""Which configuration a run trains with, and whether a checkpoint can be resumed with it.

This is training policy (which train fields change the trajectory, when a run may be overwritten), so it stays in
train/ beside the loop, its only user; where the run's files live it takes from dsmoe.runs.layout.
"""

from __future__ import annotations

from dsmoe.runs import RunConfig, RunDir

# Train fields that change the trajectory; the others (steps, eval/save cadence, budget) may change.
TRAJECTORY_FIELDS = ("batch_size", "grad_accum", "seed", "dtype")


def config_differences(saved: RunConfig, given: RunConfig) -> list[str]:
    """'section.key: saved -> given' for every field that makes resuming inexact."""
    saved_dict, given_dict = saved.to_dict(), given.to_dict()
    diffs = []
    for section in ("model", "data", "train"):
        keys = TRAJECTORY_FIELDS if section == "train" else sorted({*saved_dict[section], *given_dict[section]})
        for key in keys:
            old, new = saved_dict[section].get(key), given_dict[section].get(key)
            if old != new:
                diffs.append(f"{section}.{key}: {old!r} -> {new!r}")
    return diffs


def check_resumable(saved: RunConfig, given: RunConfig) -> None:
    diffs = config_differences(saved, given)
    if diffs:
        raise ValueError("cannot resume: the config differs from the run's in " + "; ".join(diffs))


def resolve_run_config(config: RunConfig | None, run: RunDir, resume: bool) -> RunConfig:
    """The config to train with; refuses to overwrite a run, or to resume what cannot be resumed."""
    has_checkpoint = run.latest_checkpoint() is not None
    if not resume:
        if has_checkpoint:
            raise ValueError(f"run directory {str(run.path)!r} already has checkpoints; pass --resume to continue it "
                             "or choose another --out")
        run.path.mkdir(parents=True, exist_ok=True)
        return config or RunConfig()
    if not has_checkpoint:
        raise ValueError(f"--resume: run directory {str(run.path)!r} has no checkpoint to resume from")
    saved = RunConfig.load(run.config_path)
    if config is None:
        return saved
    check_resumable(saved, config)
    return config
