"""The sizes a suite runs at: one base model and recipe per scale, from which every variant is derived."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scale:
    """A base model (hidden size, layers, heads, vocabulary), the width F of one standard FFN (GShard's expert;
    DeepSeekMoE Table 1's dense model has one, GShard activates two) and a training recipe. `steps` is the
    --budget steps default, `minutes` the --budget minutes one (per run)."""

    name: str
    model: dict
    expert_width: int  # F
    seq_len: int
    batch_size: int
    steps: int
    minutes: float
    train: dict = field(default_factory=dict)


RECIPE = dict(lr=3e-3, warmup_steps=20, min_lr_ratio=0.1, weight_decay=0.1, eval_every=50, eval_batches=10,
              save_every=50, keep_last=1)

SCALES = {
    # a few minutes per suite on a 2-core CPU
    "tiny": Scale("tiny", dict(hidden_size=128, n_layers=4, n_heads=4, vocab_size=1024, max_seq_len=128),
                  expert_width=128, seq_len=128, batch_size=8, steps=150, minutes=0.75, train=RECIPE),
    # table1-equal-activated with one seed in about 21 minutes on a 2-core CPU (docs/RESULTS.md)
    "small": Scale("small", dict(hidden_size=192, n_layers=4, n_heads=6, vocab_size=2048, max_seq_len=256),
                   expert_width=192, seq_len=256, batch_size=8, steps=500, minutes=6.0,
                   train={**RECIPE, "warmup_steps": 50, "eval_every": 100, "save_every": 100}),
}


def scale_named(name: str) -> Scale:
    if name not in SCALES:
        raise ValueError(f"--scale {name!r} is not a scale; choose one of {', '.join(SCALES)}")
    return SCALES[name]
