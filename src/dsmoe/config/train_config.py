"""Training hyper-parameters: the [train] section of a run config."""

from __future__ import annotations

from dataclasses import dataclass

from dsmoe.field_rules import COUNT, FLAG, NON_NEGATIVE, POSITIVE, POSITIVE_INT, Rule, check_fields, choice, optional

SCHEDULES = ("cosine", "step", "constant")
OPTIMIZERS = ("adamw", "muon")
DTYPES = ("auto", "float32", "bfloat16")

FIELD_RULES = dict(
    steps=POSITIVE_INT, batch_size=POSITIVE_INT, grad_accum=POSITIVE_INT, lr=POSITIVE,
    min_lr_ratio=Rule("number", "[0, 1]"), warmup_steps=COUNT, schedule=choice(SCHEDULES),
    optimizer=choice(OPTIMIZERS), muon_lr=POSITIVE, muon_momentum=Rule("number", "[0, 1)"),
    muon_experts=FLAG, weight_decay=NON_NEGATIVE,
    beta1=Rule("number", "[0, 1)"), beta2=Rule("number", "[0, 1)"), eps=POSITIVE,
    grad_clip=NON_NEGATIVE, device=Rule("device"), dtype=choice(DTYPES), compile=FLAG, activation_checkpointing=FLAG,
    seed=COUNT,
    eval_every=COUNT, eval_batches=POSITIVE_INT, save_every=COUNT, save_every_min=NON_NEGATIVE, keep_last=POSITIVE_INT,
    max_nonfinite=POSITIVE_INT, time_budget_min=optional(POSITIVE), tensorboard=FLAG, retain_freed_memory=FLAG,
)


@dataclass
class TrainConfig:
    """How to train.

    steps: optimizer steps to run. Default 1000.
    batch_size: sequences per micro-batch. Default 16.
    grad_accum: micro-batches per optimizer step (the LM loss is weighted by each micro-batch's share
        of the step's target tokens, aux losses by 1/grad_accum). Default 1.
    lr: peak learning rate. Default 1e-3.
    min_lr_ratio: cosine floor as a fraction of lr. Default 0.1.
    warmup_steps: linear warm-up steps. Default 100.
    schedule: "cosine" (warm-up then cosine to min_lr_ratio * lr), "step" (DeepSeekMoE Sec. 4.1.2:
        warm-up, then lr x 0.316 at 80% and again at 90% of steps) or "constant". Default "cosine".
    optimizer: "adamw", or "muon": Muon (torch.optim.Muon) on the hidden 2-D matrices (attention, dense FFNs,
        shared experts) and, with muon_experts, each routed expert's matrices; AdamW on the embedding, head,
        norms and router gates (dsmoe.train.muon). Default "adamw".
    muon_lr: Muon's peak learning rate (scaled per matrix by sqrt(max(1, rows / cols)), Jordan et al.'s rule;
        the schedule multiplies it as it does lr). Default 0.02.
    muon_momentum: Muon's Nesterov momentum. Default 0.95.
    muon_experts: with optimizer "muon", the routed experts' stacked weights take Muon's update too, each
        expert's matrices orthogonalised alone (dsmoe.train.stacked_muon); False leaves them on AdamW, a cheaper
        step where the experts are many small matrices and the batch is small (docs/BENCHMARKS.md). Default True.
    weight_decay: decoupled weight decay on matrices, AdamW's and Muon's (see dsmoe.train.optim). Default 0.1.
    beta1, beta2, eps: AdamW moments. Defaults 0.9, 0.95, 1e-8.
    grad_clip: max global gradient norm; 0 disables clipping. Default 1.0.
    device: where a single-process run trains: "auto" (CUDA if available, else MPS, else the CPU), "cpu", "cuda",
        "cuda:N" or "mps" (dsmoe.runtime.devices); under torchrun each rank uses its LOCAL_RANK GPU, or the CPU.
        Not part of the run: a resume may train elsewhere, as checkpoints hold device-independent fp32 tensors.
        Default "auto".
    dtype: the matmuls' precision: "float32", "bfloat16" (torch.autocast: weights, gradients and optimizer state
        stay fp32, so checkpoints and exact resume are dtype-independent and the optimizer's small updates are not
        rounded away; the router's logits stay fp32 too) or "auto" (bfloat16 on a GPU with native bf16, float32
        elsewhere), resolved to one of the two when the run starts and recorded so. Default "auto".
    compile: wrap the model in torch.compile. Default False.
    activation_checkpointing: recompute each block's activations in backward. Default False.
    seed: seeds weights and the data order. Default 0.
    eval_every: steps between validation evaluations (0: only at the end). Default 200.
    eval_batches: validation batches per periodic evaluation. Default 20.
    save_every: steps between checkpoints (0: only at the end). Default 200.
    save_every_min: minutes of training between checkpoints, counted from the last one; the first come sooner,
        after 1, 2, 4, 8 and 16 minutes of a session (the interval doubles up to this), so a run killed in its
        first minutes keeps a recent one; checked at step boundaries, agreed by every rank. 0: by steps only.
        Default 10.
    keep_last: checkpoints kept on disk. Default 3.
    max_nonfinite: consecutive non-finite losses tolerated before the run stops. Default 5.
    time_budget_min: stop (with a checkpoint) after this many minutes of training, over all sessions of a
        resumed run; the schedule then runs at the larger of the steps' and the time's share, so a run
        stopped by the clock still ends annealed (see dsmoe.train.progress). None: no limit.
    tensorboard: also write TensorBoard event files (needs the tensorboard package). Default False.
    retain_freed_memory: keep freed CPU memory for reuse instead of returning it to the OS, so large
        activations are not page-faulted in again at every step (see dsmoe.runtime). Default True.
    """

    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    schedule: str = "cosine"
    optimizer: str = "adamw"
    muon_lr: float = 0.02
    muon_momentum: float = 0.95
    muon_experts: bool = True
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    activation_checkpointing: bool = False
    seed: int = 0
    eval_every: int = 200
    eval_batches: int = 20
    save_every: int = 200
    save_every_min: float = 10.0
    keep_last: int = 3
    max_nonfinite: int = 5
    time_budget_min: float | None = None
    tensorboard: bool = False
    retain_freed_memory: bool = True

    def __post_init__(self) -> None:
        check_fields(self, FIELD_RULES)
