"""Hugging Face checkpoints <-> dsmoe models, for the families in `dsmoe.interop.families.FAMILIES`.

    model = from_pretrained("path/to/DeepSeek-V2-Lite")       # config.json + *.safetensors, streamed shard by shard
    save_pretrained(model, "out/", model_type="deepseek_v3")   # a directory AutoModelForCausalLM loads as is
    save_pretrained(model, "out/", mtp=False)                  # the family the config fits, without MTP layers
    model = from_transformers(hf_model); hf_model = to_transformers(model)   # in memory (needs transformers)

Directories hold the on-disk layout published checkpoints and transformers' own save_pretrained use (one tensor
per expert), which transformers 5 fuses on load; see `dsmoe.interop.keys`. transformers itself is needed only by
from_transformers and to_transformers.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import torch
from safetensors import safe_open

from dsmoe.atomic import atomic_directory
from dsmoe.config import ModelConfig
from dsmoe.interop.families import Family, export_family, get_family
from dsmoe.interop.hf_files import MAX_SHARD_BYTES, shard_files, write_shards
from dsmoe.interop.keys import KeyNames, Piece, hf_pieces
from dsmoe.interop.meta_fill import StreamingFill, check_names, meta_model
from dsmoe.model import DeepSeekMoEForCausalLM
from dsmoe.registry import ROUTERS
from dsmoe.structured_files import read_table

CONFIG_FILE = "config.json"
MTP_PREFIX = "mtp."  # the MTP modules' names in dsmoe's state dict
TOKENIZER_FILE = "tokenizer.json"


def layout(model: DeepSeekMoEForCausalLM, names: KeyNames, per_expert: bool, mtp: bool = True) -> dict[str, Piece]:
    """Hugging Face tensor name -> where it lives in `model` (see keys.hf_pieces); mtp=False leaves out the MTP
    modules' tensors."""
    config = model.config
    shapes = {name: tensor.shape for name, tensor in model.state_dict(keep_vars=True).items()
              if mtp or not name.startswith(MTP_PREFIX)}
    if config.n_routed_experts:  # the router says which of its tensors a checkpoint holds, and their names
        names = dataclasses.replace(names, router_tensors=tuple(ROUTERS[config.router].HF_TENSOR_NAMES.items()))
    n_mtp_modules = config.n_mtp_modules if mtp else 0
    return hf_pieces(shapes, names, config.n_layers, n_mtp_modules, config.tie_word_embeddings, per_expert)


def exported_config(config: ModelConfig, mtp: bool) -> ModelConfig:
    """The config an export writes: `config`, or without MTP modules (they do not change the main logits)."""
    return config if mtp else dataclasses.replace(config, n_mtp_modules=0)


def from_pretrained(path: str | Path, dtype: torch.dtype = torch.float32,
                    device: torch.device = torch.device("cpu")) -> DeepSeekMoEForCausalLM:
    """Load a Hugging Face checkpoint directory (config.json and safetensors shards) as a dsmoe model in eval mode.

    The model is built on the meta device and filled shard by shard, so memory holds the model plus one tensor;
    weights are cast to `dtype` and placed on `device` as they arrive (the model's memory is the device's). DeepSeek-V3 MTP layers (model.layers.{num_hidden_layers + k}) become dsmoe's MTP
    modules. Errors name the unsupported model_type or field, or the missing, unexpected or misshapen tensor.
    """
    directory = Path(path)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{str(directory)!r} is not a Hugging Face checkpoint directory (no {CONFIG_FILE})")
    values = read_table(config_path, "Hugging Face config")
    family = get_family(values.get("model_type"))
    files = shard_files(directory)
    names = []
    for file in files:
        with safe_open(file, "pt") as shard:
            names += shard.keys()
    model = meta_model(family.config(values, mtp_layers(family, values, names)))
    pieces = layout(model, family.names, per_expert=True)
    source = f"checkpoint {str(directory)!r}"
    check_names(pieces, names, source)
    fill = StreamingFill(model, pieces, dtype, device)
    for file in files:
        with safe_open(file, "pt") as shard:
            for name in shard.keys():
                fill.put(name, shard.get_tensor(name))
    return fill.finish(source)


def mtp_layers(family: Family, values: dict, names: list[str]) -> int:
    """How many MTP layers the checkpoint holds after its num_hidden_layers main ones (DeepSeek-V3's layout):
    none, or exactly num_nextn_predict_layers (transformers' own save_pretrained writes none)."""
    n_layers = values["num_hidden_layers"]
    found = sorted({int(match.group(1)) for name in names if (match := re.match(r"model\.layers\.(\d+)\.", name))
                    and int(match.group(1)) >= n_layers})
    if not family.has_mtp or not found:
        return 0
    declared = family.fields(values)["num_nextn_predict_layers"]
    if found != list(range(n_layers, n_layers + declared)):
        raise ValueError(f"checkpoint holds MTP layers {found} but num_nextn_predict_layers={declared} "
                         f"(expected layers {n_layers}..{n_layers + declared - 1})")
    return declared


def save_pretrained(model: DeepSeekMoEForCausalLM, directory: str | Path, model_type: str | None = None,
                    tokenizer_file: str | Path | None = None, max_shard_bytes: int = MAX_SHARD_BYTES,
                    mtp: bool = True) -> Path:
    """Write `model` as a Hugging Face checkpoint directory of `model_type` (default: the family the config fits,
    see families.export_family): config.json, safetensors shards in the per-expert on-disk layout, and a copy of
    `tokenizer_file`.

    The directory must not exist or be empty; it appears complete or not at all. MTP modules are written as
    DeepSeek-V3 writes them (model.layers.{n_layers + k}, which transformers skips on load, reporting them as
    unexpected keys), or left out with mtp=False (num_nextn_predict_layers 0). ValueError names every reason the
    family cannot express the config.
    """
    config = exported_config(model.config, mtp)
    family = export_family(config, model_type)
    values = family.hf_config(config)
    state = model.state_dict()
    values["dtype"] = str(state["embed_tokens.weight"].dtype).removeprefix("torch.")
    pieces = {name: piece for name, piece in layout(model, family.names, per_expert=True, mtp=mtp).items()
              if not piece.optional}
    sizes = {name: state[piece.name].element_size() * torch.Size(piece.shape(state[piece.name].shape)).numel()
             for name, piece in pieces.items()}
    with atomic_directory(directory) as temporary:
        write_shards(temporary, sizes, lambda name: pieces[name].take(state[pieces[name].name]), max_shard_bytes)
        (temporary / CONFIG_FILE).write_text(json.dumps(values, indent=2) + "\n")
        if tokenizer_file is not None:
            shutil.copyfile(tokenizer_file, temporary / TOKENIZER_FILE)
    return Path(directory)


def from_transformers(model, dtype: torch.dtype | None = None) -> DeepSeekMoEForCausalLM:
    """A dsmoe copy (in eval mode) of a transformers model of a supported family, weights in `dtype` (default:
    the model's). Mirrors transformers' in-memory names: fused experts, `mlp.*` for every family."""
    values = model.config.to_dict()
    family = get_family(values.get("model_type"))
    dsmoe_model = meta_model(family.config(values))
    pieces = layout(dsmoe_model, family.names.in_transformers(), per_expert=False)
    state = model.state_dict()
    source = f"transformers model {type(model).__name__}"
    check_names(pieces, state.keys(), source)
    fill = StreamingFill(dsmoe_model, pieces, dtype or model.dtype)
    for name, tensor in state.items():
        fill.put(name, tensor.detach().clone())
    return fill.finish(source)


def to_transformers(model: DeepSeekMoEForCausalLM, model_type: str | None = None,
                    attn_implementation: str | None = None, mtp: bool = True):
    """A transformers AutoModelForCausalLM (in eval mode) holding a copy of `model`'s weights, of `model_type`
    (default: the family the config fits, see families.export_family). transformers has no MTP modules: a model
    with them is refused unless mtp=False leaves them out (save_pretrained keeps them in DeepSeek-V3's layout)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if model.mtp is not None and mtp:
        raise ValueError(f"n_mtp_modules={model.config.n_mtp_modules}: transformers models have no MTP modules; "
                         "pass mtp=False to leave them out, or use save_pretrained, which writes them as DeepSeek-V3 "
                         "does")
    config = exported_config(model.config, mtp)
    family = export_family(config, model_type)
    values = family.hf_config(config)
    fields = {name: value for name, value in values.items() if name not in ("model_type", "architectures")}
    hf_config = AutoConfig.for_model(family.model_type, **fields)
    state = model.state_dict()
    hf_model = AutoModelForCausalLM.from_config(hf_config, attn_implementation=attn_implementation,
                                                dtype=state["embed_tokens.weight"].dtype)
    pieces = layout(model, family.names.in_transformers(), per_expert=False, mtp=mtp)
    tensors = {name: piece.take(state[piece.name]) for name, piece in pieces.items()}
    missing, unexpected = hf_model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ValueError(f"{type(hf_model).__name__} does not match the converted weights: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return hf_model.eval()
