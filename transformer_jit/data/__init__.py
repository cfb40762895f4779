"""Text and examples in, batches of token ids out.

    text         load_text, the built-in corpus, TextDataset (random windows of a token stream)
    tokenizers   CharTokenizer, SeqTokenizer, TokenizerPair
    sequences    pad_batch, PairDataset (seq2seq), LabelledDataset (classification)
    bucketing    batches of similar-length examples
    tasks        generated tasks with held-out splits (dates, brackets); task_data builds their datasets
"""
from .bucketing import LengthBuckets
from .sequences import LabelledDataset, PairDataset, pad_batch
from .task_data import CLASSIFIER_TASKS, SEQ2SEQ_TASKS, TaskData, classifier_task, seq2seq_task
from .text import TextDataset, default_corpus, load_text
from .tokenizers import CharTokenizer, SeqTokenizer, TokenizerPair, tokenizer_from_dict

__all__ = ["LengthBuckets", "LabelledDataset", "PairDataset", "pad_batch", "CLASSIFIER_TASKS", "SEQ2SEQ_TASKS",
           "TaskData", "classifier_task", "seq2seq_task", "TextDataset", "default_corpus", "load_text",
           "CharTokenizer", "SeqTokenizer", "TokenizerPair", "tokenizer_from_dict"]
