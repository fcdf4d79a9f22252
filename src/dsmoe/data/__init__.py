"""The data pipeline: corpus files -> byte-level BPE -> cached token splits -> deterministic batches."""

from dsmoe.config.data_config import DataConfig
from dsmoe.data.batches import TrainBatches, val_batches
from dsmoe.data.corpus import Corpus, Document, resolve_corpus
from dsmoe.data.prepare import PreparedData, prepare_data
from dsmoe.data.tokenizer import load_tokenizer, save_tokenizer, token_byte_lengths, train_tokenizer
from dsmoe.data.tokens import DomainSpan, TokenSplit, TokenSplits, token_dtype, tokenize_corpus
from dsmoe.data.whole_files import WholeFiles, tokenize_whole_files

__all__ = ["Corpus", "DataConfig", "Document", "DomainSpan", "PreparedData", "TokenSplit", "TokenSplits",
           "TrainBatches", "WholeFiles", "load_tokenizer", "prepare_data", "resolve_corpus", "save_tokenizer",
           "token_byte_lengths", "token_dtype", "tokenize_corpus", "tokenize_whole_files", "train_tokenizer",
           "val_batches"]
