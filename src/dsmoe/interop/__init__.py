"""Conversion between dsmoe models and Hugging Face checkpoints (see `dsmoe.interop.hf`)."""
