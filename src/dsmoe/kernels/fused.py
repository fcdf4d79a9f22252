"""The routed experts' kernels: the fused grouped_mm op, its plain-loop twin, and the choice between them.

Both compute, for pairs sorted by expert (offsets_E: int32 cumulative pair counts per expert, the `offs` of
torch._grouped_mm), out_TD[t] = sum over pairs s reading row t of weight_S[s] * SwiGLU_{expert of s}(x_TD[t]);
loop_experts is the obvious version (any pair order), and tests/kernels checks that the two agree. With a
swiglu_limit the SwiGLU is DeepSeek-V4's clamped one (`swiglu`), and the op's backward passes no gradient where a
value was clamped.

The fast path is one custom op with its own backward: gather, SwiGLU experts, weighted scatter, run over chunks
of consecutive experts. Autograd over the plain ops would keep the K-fold gathered input, both projections, the
SwiGLU product and the weighted output alive for backward. This op keeps only the gate/up projection
h = x W1^T ([S, 2F], what the SwiGLU derivative needs) and recomputes the rest: the gather of x
(cheap memory traffic) and silu(gate) * up (elementwise). The routing weight is folded into the
SwiGLU output before the down projection, w * (a W2^T) = (w * a) W2^T, so no [S, D] product is
materialised, and its gradient is <g W2, a> on [S, F] rows instead of <g, y> on [S, D] rows.
Pairs are sorted by expert, so a run of consecutive experts is a contiguous block of rows: the op
works through blocks of about ROWS_PER_CHUNK rows, so the K-fold [rows, D] temporaries (gathered
inputs, outputs, their gradients) never exist for all T * K pairs at once.

Being a torch.library custom op, it is opaque to torch.compile, which cannot trace fp32
torch._grouped_mm itself; the output shapes depend only on input shapes (S = T * K pairs), so
changing tokens-per-expert counts never recompile.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

ROWS_PER_CHUNK = 8192  # pair rows per block of experts on a CPU (an expert with more rows gets a block of its own)
ACCELERATOR_ROWS_PER_CHUNK = 65536  # on a GPU: fewer, larger grouped GEMMs; its caching allocator reuses the blocks
FORWARD_CHUNK_FACTOR = 4  # forward blocks are 4x longer: per row it holds 2 [., D] + 1 [., F] temporaries, backward 3 + 3
GROUPED_MM_ALIGN_BYTES = 16  # torch._grouped_mm needs every row stride to be a multiple of 16 bytes


def use_grouped_mm(expert_kernel: str, x: torch.Tensor, gate_up_EFD: torch.Tensor) -> bool:
    """Resolve the config's expert_kernel for these tensors ("auto" falls back to the loop)."""
    supported = grouped_mm_supported(x, gate_up_EFD)
    if expert_kernel == "grouped_mm" and not supported:
        raise ValueError(f"expert_kernel='grouped_mm' is unavailable for dtype {x.dtype} and expert shape "
                         f"{tuple(gate_up_EFD.shape)} (needs torch._grouped_mm, fp32/bf16, 16-byte rows)")
    return expert_kernel != "loop" and supported


def grouped_mm_supported(x: torch.Tensor, gate_up_EFD: torch.Tensor) -> bool:
    """Whether torch._grouped_mm exists and accepts these shapes and dtype."""
    if torch.compiler.is_compiling():  # the probe cannot run inside a torch.compile trace: the op's existence does
        return hasattr(torch, "_grouped_mm") and x.dtype in (torch.float32, torch.bfloat16) and \
            rows_aligned(gate_up_EFD.shape[1] // 2, gate_up_EFD.shape[2], x.dtype)
    return grouped_mm_unavailable(x.device.type, x.dtype, gate_up_EFD.shape[1] // 2, gate_up_EFD.shape[2]) is None


def grouped_mm_unavailable(device_type: str, dtype: torch.dtype, width: int, hidden: int) -> str | None:
    """Why the fused grouped_mm op cannot run experts of this width and hidden size here, in words; None if it can.
    On CUDA, torch._grouped_mm needs bf16 on an sm90+ GPU (what this torch build runs is probed)."""
    if dtype not in (torch.float32, torch.bfloat16):
        return f"it takes float32 or bfloat16, not {dtype_name(dtype)}"
    if not grouped_mm_runs_on(device_type, dtype):
        return f"this torch build does not run torch._grouped_mm on {device_type} in {dtype_name(dtype)}"
    if not rows_aligned(width, hidden, dtype):
        return (f"expert rows of {width} and {hidden} {dtype_name(dtype)} values are not multiples of "
                f"{GROUPED_MM_ALIGN_BYTES} bytes")
    return None


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def rows_aligned(width: int, hidden: int, dtype: torch.dtype) -> bool:
    return all(n * dtype.itemsize % GROUPED_MM_ALIGN_BYTES == 0 for n in (width, hidden))


@functools.cache
def grouped_mm_runs_on(device_type: str, dtype: torch.dtype) -> bool:
    """Whether this torch build runs torch._grouped_mm on this device and dtype (older builds: CUDA only)."""
    if not hasattr(torch, "_grouped_mm"):
        return False
    try:
        a, b = torch.ones(8, 8, device=device_type, dtype=dtype), torch.ones(2, 8, 8, device=device_type, dtype=dtype)
        torch._grouped_mm(a, b, offs=torch.tensor([4, 8], device=device_type, dtype=torch.int32))
    except (RuntimeError, NotImplementedError):
        return False
    return True


def sort_by_expert(expert_index_S: torch.Tensor, n_experts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(order_S putting pairs in expert order, int32 cumulative pair counts per expert for grouped_mm)."""
    order_S = torch.argsort(expert_index_S, stable=True)
    pairs_per_expert = torch.zeros(n_experts, dtype=torch.int32, device=expert_index_S.device)
    pairs_per_expert.scatter_add_(0, expert_index_S, torch.ones_like(expert_index_S, dtype=torch.int32))
    return order_S, torch.cumsum(pairs_per_expert, 0, dtype=torch.int32)


def expert_chunks(offsets_E: torch.Tensor, factor: int = 1) -> list[tuple[slice, slice, torch.Tensor]]:
    """(experts, rows, offsets within the block) of runs of consecutive experts holding >= 1 row each, of about
    factor * ROWS_PER_CHUNK rows."""
    ends = offsets_E.tolist()
    rows_per_chunk = factor * (ROWS_PER_CHUNK if offsets_E.device.type == "cpu" else ACCELERATOR_ROWS_PER_CHUNK)
    chunks, first_expert, first_row = [], 0, 0
    for expert, end_row in enumerate(ends):
        if end_row - first_row >= rows_per_chunk or expert == len(ends) - 1:
            if end_row > first_row:
                block_offsets = torch.tensor(ends[first_expert:expert + 1], dtype=torch.int32) - first_row
                chunks.append((slice(first_expert, expert + 1), slice(first_row, end_row),
                               block_offsets.to(offsets_E.device)))
            first_expert, first_row = expert + 1, end_row
    return chunks


def swiglu(gate_SF: torch.Tensor, up_SF: torch.Tensor, limit: float | None = None) -> torch.Tensor:
    """silu(gate) * up (Shazeer 2020); with a limit, silu(min(gate, limit)) * clamp(up, -limit, limit) (DeepSeek-V4's
    swiglu_limit, as transformers' DeepseekV4Experts._apply_gate)."""
    if limit is not None:
        gate_SF, up_SF = gate_SF.clamp(max=limit), up_SF.clamp(min=-limit, max=limit)
    return F.silu(gate_SF) * up_SF


def swiglu_from_gate_up(h_SF2: torch.Tensor, limit: float | None = None) -> torch.Tensor:
    """swiglu of the fused gate/up projection (gate columns first)."""
    return swiglu(*h_SF2.chunk(2, dim=-1), limit)


def expert_mm(a_SX: torch.Tensor, b_EXY: torch.Tensor, offsets_E: torch.Tensor) -> torch.Tensor:
    """torch._grouped_mm(a, b, offs): each expert's block of rows times its matrix. With fewer rows than experts
    (decoding) only the experts holding rows are visited; the CPU grouped_mm steps through all of them. X, Y: the
    product's inner and outer widths."""
    if a_SX.shape[0] >= b_EXY.shape[0]:
        return torch._grouped_mm(a_SX, b_EXY, offs=offsets_E)
    out_SY = a_SX.new_empty(a_SX.shape[0], b_EXY.shape[-1])
    start = 0
    for expert, end in enumerate(offsets_E.tolist()):
        if end > start:
            torch.mm(a_SX[start:end], b_EXY[expert], out=out_SY[start:end])
        start = end
    return out_SY


@torch.library.custom_op("dsmoe::grouped_swiglu_experts", mutates_args=())
def grouped_swiglu_experts(x_TD: torch.Tensor, token_sorted_S: torch.Tensor, offsets_E: torch.Tensor,
                           weight_sorted_S: torch.Tensor, gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor,
                           swiglu_limit: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(out_TD = scatter_add over pairs s of w_s * SwiGLU_{e_s}(x_{t_s}), the kept projection h_SF2, unclamped)."""
    out_TD = torch.zeros_like(x_TD)
    chunks = expert_chunks(offsets_E, FORWARD_CHUNK_FACTOR)
    h_SF2 = x_TD.new_empty(token_sorted_S.shape[0], gate_up_EFD.shape[1])
    for experts, rows, offsets in chunks:
        x_SD = x_TD.index_select(0, token_sorted_S[rows])
        h_block = expert_mm(x_SD, gate_up_EFD[experts].transpose(-2, -1), offsets)
        del x_SD
        if len(chunks) == 1:  # one block holds every row: keep it, no copy
            h_SF2 = h_block
        else:
            h_SF2[rows] = h_block
            h_block = h_SF2[rows]
        act_SF = swiglu_from_gate_up(h_block, swiglu_limit).mul_(weight_sorted_S[rows].unsqueeze(-1))
        y_SD = expert_mm(act_SF, down_EDF[experts].transpose(-2, -1), offsets)
        out_TD.index_add_(0, token_sorted_S[rows], y_SD)
    return out_TD, h_SF2


@grouped_swiglu_experts.register_fake
def _(x_TD, token_sorted_S, offsets_E, weight_sorted_S, gate_up_EFD, down_EDF, swiglu_limit=None):
    return torch.empty_like(x_TD), x_TD.new_empty(token_sorted_S.shape[0], gate_up_EFD.shape[1])


@torch.no_grad()
def swiglu_backward_into_(gate_SF: torch.Tensor, up_SF: torch.Tensor, silu_gate_SF: torch.Tensor,
                          grad_act_SF: torch.Tensor, scratch_SF: torch.Tensor) -> None:
    """Overwrite gate and up (the two halves of h) with dL/dgate and dL/dup, in three passes.

    dL/dup = grad * silu(gate); dL/dgate = (grad * up) * silu'(gate), silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g)))
    (aten's silu_backward, written over gate in place). scratch_SF is overwritten.
    """
    grad_times_up_SF = torch.mul(grad_act_SF, up_SF, out=scratch_SF)
    torch.mul(grad_act_SF, silu_gate_SF, out=up_SF)
    torch.ops.aten.silu_backward.grad_input(grad_times_up_SF, gate_SF, grad_input=gate_SF)


@torch.no_grad()
def clamp_gate_up_(gate_SF: torch.Tensor, up_SF: torch.Tensor, limit: float | None) -> torch.Tensor | None:
    """Clamp gate to <= limit and up to [-limit, limit] in place (DeepSeek-V4's swiglu_limit); return where each half
    was clamped, [S, 2F] bool (gate columns first), where the gradient is zero: autograd's clamp passes it wherever
    min <= value <= max. None, and nothing changed, without a limit."""
    if limit is None:
        return None
    clamped_SF2 = torch.cat([gate_SF > limit, up_SF.abs() > limit], dim=-1)
    gate_SF.clamp_(max=limit)
    up_SF.clamp_(min=-limit, max=limit)
    return clamped_SF2


def gradient_buffer(weight_EXY: torch.Tensor, chunks: list[tuple[slice, slice, torch.Tensor]]) -> torch.Tensor:
    """An uninitialised gradient for the stacked expert weights, zero only at the experts in no block (they got no
    rows); every block's experts are then overwritten with their gradients (no memset of the whole tensor). X, Y: the
    stacked matrices' two widths."""
    grad_EXY = torch.empty_like(weight_EXY)
    next_expert = 0
    for experts, _, _ in chunks:
        grad_EXY[next_expert:experts.start].zero_()
        next_expert = experts.stop
    grad_EXY[next_expert:].zero_()
    return grad_EXY


@torch.library.custom_op("dsmoe::grouped_swiglu_experts_backward", mutates_args=("h_SF2",))
def grouped_swiglu_experts_backward(grad_out_TD: torch.Tensor, x_TD: torch.Tensor, token_sorted_S: torch.Tensor,
                                    offsets_E: torch.Tensor, weight_sorted_S: torch.Tensor,
                                    gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor, h_SF2: torch.Tensor,
                                    swiglu_limit: float | None = None
                                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients w.r.t. (x_TD, weight_sorted_S, gate_up_EFD, down_EDF). Consumes h_SF2: it is overwritten by
    its own gradient (a second backward through the same graph then fails autograd's saved-tensor check). With a
    swiglu_limit, h is clamped in place first and its gradient zeroed where it was clamped."""
    grad_x_TD, grad_weight_S = torch.zeros_like(x_TD), torch.empty_like(weight_sorted_S)  # blocks cover every row
    chunks = expert_chunks(offsets_E)
    # one block of every expert: its weight gradients are the whole ones (no buffers to copy blocks into)
    whole = len(chunks) == 1 and chunks[0][0] == slice(0, gate_up_EFD.shape[0])
    grad_gate_up_EFD, grad_down_EDF = (None, None) if whole else (gradient_buffer(gate_up_EFD, chunks),
                                                                  gradient_buffer(down_EDF, chunks))
    for experts, rows, offsets in chunks:
        tokens_S, w_S1 = token_sorted_S[rows], weight_sorted_S[rows].unsqueeze(-1)
        grad_y_SD = grad_out_TD.index_select(0, tokens_S)  # also makes an expanded gradient contiguous
        grad_h_SF2 = h_SF2[rows]  # overwritten below with its own gradient
        gate_SF, up_SF = grad_h_SF2.chunk(2, dim=-1)
        clamped_SF2 = clamp_gate_up_(gate_SF, up_SF, swiglu_limit)
        silu_gate_SF = F.silu(gate_SF)  # recomputed once, for act and for dL/dup
        act_SF = silu_gate_SF * up_SF
        grad_act_SF = torch._grouped_mm(grad_y_SD, down_EDF[experts], offs=offsets)  # gradient w.r.t. w * act
        grad_weight_S[rows] = torch.linalg.vecdot(grad_act_SF, act_SF).to(grad_weight_S.dtype)
        grad_down_block = torch._grouped_mm(grad_y_SD.t(), act_SF.mul_(w_S1), offs=offsets)
        if whole:
            grad_down_EDF = grad_down_block
        else:
            grad_down_EDF[experts] = grad_down_block
        del grad_y_SD
        swiglu_backward_into_(gate_SF, up_SF, silu_gate_SF, grad_act_SF.mul_(w_S1), scratch_SF=act_SF)
        del grad_act_SF, silu_gate_SF, act_SF
        if clamped_SF2 is not None:
            grad_h_SF2.masked_fill_(clamped_SF2, 0.0)
        grad_x_TD.index_add_(0, tokens_S, torch._grouped_mm(grad_h_SF2, gate_up_EFD[experts], offs=offsets))
        x_SD = x_TD.index_select(0, tokens_S)
        grad_gate_up_block = torch._grouped_mm(grad_h_SF2.t(), x_SD, offs=offsets)
        if whole:
            grad_gate_up_EFD = grad_gate_up_block
        else:
            grad_gate_up_EFD[experts] = grad_gate_up_block
    return grad_x_TD, grad_weight_S, grad_gate_up_EFD, grad_down_EDF


@grouped_swiglu_experts_backward.register_fake
def _(grad_out_TD, x_TD, token_sorted_S, offsets_E, weight_sorted_S, gate_up_EFD, down_EDF, h_SF2, swiglu_limit=None):
    return (torch.empty_like(x_TD), torch.empty_like(weight_sorted_S), torch.empty_like(gate_up_EFD),
            torch.empty_like(down_EDF))


def setup_context(ctx, inputs, output) -> None:
    *tensors, ctx.swiglu_limit = inputs
    ctx.save_for_backward(*tensors, output[1])
    # h_SF2 is kept for backward, not a result: autograd would otherwise zero-fill an [S, 2F] gradient for it
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)


def backward(ctx, grad_out_TD, grad_h_SF2):
    if grad_out_TD is None:  # the output took no part in the loss
        return None, None, None, None, None, None, None
    x_TD, token_sorted_S, offsets_E, weight_sorted_S, gate_up_EFD, down_EDF, h_SF2 = ctx.saved_tensors
    grad_x, grad_weight, grad_gate_up, grad_down = grouped_swiglu_experts_backward(
        grad_out_TD, x_TD, token_sorted_S, offsets_E, weight_sorted_S, gate_up_EFD, down_EDF, h_SF2, ctx.swiglu_limit)
    return grad_x, None, None, grad_weight, grad_gate_up, grad_down, None


grouped_swiglu_experts.register_autograd(backward, setup_context=setup_context)


def fused_grouped_experts(x_TD, token_sorted_S, offsets_E, weight_sorted_S, gate_up_EFD, down_EDF,
                          swiglu_limit: float | None = None) -> torch.Tensor:
    """out_TD of grouped_swiglu_experts; pairs must be sorted by expert, offsets_E their int32 cumulative counts."""
    return grouped_swiglu_experts(x_TD, token_sorted_S, offsets_E, weight_sorted_S, gate_up_EFD, down_EDF,
                                  swiglu_limit)[0]


def grouped_experts(x_TD: torch.Tensor, token_index_S: torch.Tensor, expert_index_S: torch.Tensor,
                    weight_S: torch.Tensor, gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor,
                    swiglu_limit: float | None = None) -> torch.Tensor:
    """The fused op for pairs in any order (sorted here): out_t = sum over pairs (t, e, w) of w * expert_e(x_t)."""
    order_S, offsets_E = sort_by_expert(expert_index_S, gate_up_EFD.shape[0])
    return fused_grouped_experts(x_TD, token_index_S.index_select(0, order_S), offsets_E,
                                 weight_S.index_select(0, order_S), gate_up_EFD, down_EDF, swiglu_limit)


def loop_experts(x_TD: torch.Tensor, token_index_S: torch.Tensor, expert_index_S: torch.Tensor,
                 weight_S: torch.Tensor, gate_up_EFD: torch.Tensor, down_EDF: torch.Tensor,
                 swiglu_limit: float | None = None) -> torch.Tensor:
    """The reference twin: out_t = sum over pairs (t, e, w) of w * expert_e(x_t), one dense SwiGLU per expert, by
    plain autograd (pairs in any order)."""
    out_TD = torch.zeros_like(x_TD)
    # unbind, not gate_up_EFD[expert]: indexing would give each expert a full-size [E, ...] zero gradient
    gate_ups_FD, downs_DF = gate_up_EFD.unbind(0), down_EDF.unbind(0)
    for expert in expert_index_S.unique().tolist():  # only the experts that received pairs
        selected = expert_index_S == expert
        tokens = token_index_S[selected]
        gate_RF, up_RF = F.linear(x_TD[tokens], gate_ups_FD[expert]).chunk(2, dim=-1)
        y_SD = F.linear(swiglu(gate_RF, up_RF, swiglu_limit), downs_DF[expert])
        out_TD = out_TD.index_add(0, tokens, y_SD * weight_S[selected].unsqueeze(-1).to(y_SD.dtype))
    return out_TD
