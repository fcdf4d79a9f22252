"""Which configuration a run trains with, whether a checkpoint can be resumed with it, and where a new run may go.

A resume never silently changes the run. Per field of the config it may be given:

    section.field                                   on --resume
    train.steps, train.time_budget_min              applied: the schedule is recomputed at the resumed step
    train.lr, muon_lr, min_lr_ratio, warmup_steps,  applied: each group's lr is the new schedule's at that step
      schedule
    train.weight_decay, beta1, beta2, eps,          applied to the optimizer's groups (its moments are kept)
      muon_momentum
    train.grad_clip, eval_every, eval_batches,      applied (read at every step)
      save_every, save_every_min, keep_last, max_nonfinite, compile,
      activation_checkpointing, tensorboard, retain_freed_memory
    train.batch_size, grad_accum, seed, dtype       refused: the data order or the numerics would change
    train.optimizer, muon_experts                   refused: the checkpoint holds that optimizer's moments
    parallel.*                                      applied: checkpoints hold full tensors, cut anew for any
                                                    layout (dsmoe.parallel.state); the micro-batch each rank's
                                                    balance losses see changes with it
    model.*                                         refused: the checkpoint holds this model
    data.*                                          refused; data.path is compared resolved to an absolute path
                                                    (dsmoe.data.identity), and the corpus read must still have
                                                    the run's data.sha256
    the run's tokenizer.json                        always the run's own, never re-derived or rewritten

A run whose config.toml predates a train field resumes with the value it trained with (TRAINED_BEFORE_THE_FIELD:
Muon runs saved before train.muon_experts kept their routed experts on AdamW). What changes is printed on stdout. A new run goes only into a new or empty directory: one with checkpoints needs
--resume, and one holding anything else (a user's files) is refused, so nothing in it is overwritten.

This is training policy, so it stays in train/ beside the loop, its only user; where the run's files live it takes
from dsmoe.runs.layout.
"""

from __future__ import annotations

import dataclasses

from dsmoe.atomic import listed
from dsmoe.data.identity import absolute_path
from dsmoe.runs import RunConfig, RunDir
from dsmoe.runs.checkpoint import has_trainer_state
from dsmoe.structured_files import read_table

# Train fields that change the trajectory in ways a checkpoint cannot follow; the others are applied on resume.
TRAJECTORY_FIELDS = ("batch_size", "grad_accum", "seed", "dtype", "optimizer", "muon_experts")
# Train fields added after runs were saved without them, and the value those runs trained with.
TRAINED_BEFORE_THE_FIELD = {"muon_experts": False}  # Muon left the routed experts on AdamW


def saved_config(run: RunDir) -> RunConfig:
    """The run's config.toml as the run trained: a field its file predates takes the value the run had."""
    values = read_table(run.config_path, "config file")
    values["train"] = {**TRAINED_BEFORE_THE_FIELD, **values.get("train", {})}
    return RunConfig.from_dict(values)


def config_differences(saved: RunConfig, given: RunConfig, train_keys=TRAJECTORY_FIELDS) -> list[str]:
    """'section.key: saved -> given' for every model and data field, and every train field in `train_keys`, that
    differs."""
    saved_dict, given_dict = saved.to_dict(), given.to_dict()
    diffs = []
    for section in ("model", "data", "train"):
        keys = train_keys if section == "train" else sorted({*saved_dict[section], *given_dict[section]})
        for key in keys:
            old, new = saved_dict[section].get(key), given_dict[section].get(key)
            if old != new:
                diffs.append(f"{section}.{key}: {old!r} -> {new!r}")
    return diffs


def with_run_identity(saved: RunConfig, given: RunConfig) -> RunConfig:
    """`given` reading the run's corpus: its data.path must resolve to the run's, and an unset sha256 is the run's."""
    given_path, saved_path = absolute_path(given.data.path), absolute_path(saved.data.path)
    if given_path != saved_path:
        raise ValueError(f"--resume: data.path {given.data.path!r} resolves to {given_path!r}, the run used "
                         f"{saved_path!r}")
    data = dataclasses.replace(given.data, path=saved.data.path, sha256=given.data.sha256 or saved.data.sha256)
    return dataclasses.replace(given, data=data)


def check_resumable(saved: RunConfig, given: RunConfig) -> tuple[RunConfig, list[str]]:
    """The config to resume with (`given` on the run's corpus) and the train fields it changes; raises naming every
    field that cannot change."""
    given = with_run_identity(saved, given)
    diffs = config_differences(saved, given)
    if diffs:
        raise ValueError("cannot resume: the config differs from the run's in " + "; ".join(diffs))
    train_keys = [field.name for field in dataclasses.fields(given.train)]
    return given, config_differences(saved, given, train_keys) + layout_differences(saved, given)


def layout_differences(saved: RunConfig, given: RunConfig) -> list[str]:
    """'parallel.key: saved -> given' for each [parallel] field a resume changes."""
    old, new = dataclasses.asdict(saved.parallel), dataclasses.asdict(given.parallel)
    return [f"parallel.{key}: {old[key]!r} -> {new[key]!r}" for key in old if old[key] != new[key]]


def check_resumable_run(run: RunDir) -> None:
    """Refuse a run without checkpoints, without a tokenizer to reuse, or whose checkpoints have no trainer state
    (an imported run)."""
    latest = run.latest_checkpoint()
    if latest is None:
        raise ValueError(f"--resume: run directory {str(run.path)!r} has no checkpoint to resume from")
    if not run.tokenizer_path.is_file():
        raise ValueError(f"--resume: run directory {str(run.path)!r} has no {run.tokenizer_path.name}; its "
                         "checkpoints hold that tokenizer's token ids, so it is never derived again: put the run's "
                         "own copy back")
    if not any(has_trainer_state(checkpoint) for checkpoint in run.checkpoints()):
        raise ValueError(f"--resume: no checkpoint of run directory {str(run.path)!r} has a trainer state (an "
                         "imported run holds weights only); start a new run in another --out")


def check_new_run_dir(run: RunDir) -> None:
    """Refuse to start a run in a directory with checkpoints (that needs --resume) or any other entries."""
    if run.path.exists() and not run.path.is_dir():
        raise ValueError(f"--out {str(run.path)!r} is a file, not a directory")
    if run.latest_checkpoint() is not None:
        raise ValueError(f"run directory {str(run.path)!r} already has checkpoints; pass --resume to continue it "
                         "or choose another --out")
    entries = sorted(path.name for path in run.path.iterdir() if path != run.lock_path) if run.path.exists() else []
    if entries:
        raise ValueError(f"--out {str(run.path)!r} is not empty ({listed(entries)}) and is not a run to resume; a "
                         "new run starts only in a new or empty directory, so nothing there is overwritten: choose "
                         "another --out")


def resolve_run_config(config: RunConfig | None, run: RunDir, resume: bool) -> tuple[RunConfig, list[str]]:
    """The config to train with and, on resume, the changes it makes ('section.key: old -> new', to be said once the
    corpus is checked too); refuses to overwrite a directory, or to resume what cannot be resumed."""
    if not resume:
        check_new_run_dir(run)
        run.path.mkdir(parents=True, exist_ok=True)
        return config or RunConfig(), []
    check_resumable_run(run)
    saved = saved_config(run)
    return check_resumable(saved, saved if config is None else config)
