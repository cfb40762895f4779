"""Text and examples in, batches of token ids out.

    tokenizers    CharTokenizer, SeqTokenizer, TokenizerPair, and GPT-2's byte-level BPETokenizer
    text          load_text, the built-in corpus, TextDataset (random windows of a token stream)
    token_files   a corpus on disk as train.bin / val.bin, read a batch at a time; prepare writes them
    sequences     pad_batch, PairDataset (seq2seq), LabelledDataset (classification)
    bucketing     batches of similar-length examples
    tasks         generated tasks with held-out splits (dates, brackets); task_data builds their datasets
    images        LabelledImages and ImageDataset: uint8 images, stratified splits, batches of float pixels
    image_files   the user's images: an .npz, class subfolders of PNG/JPEG files, image files
    image_tasks   the vision transformer's data: the generated marks task, scikit-learn's digits, the user's
"""
from .bucketing import LengthBuckets
from .sequences import LabelledDataset, PairDataset, pad_batch
from .task_data import CLASSIFIER_TASKS, SEQ2SEQ_TASKS, TaskData, classifier_task, seq2seq_task
from .text import TextDataset, default_corpus, load_text
from .tokenizers import BPETokenizer, CharTokenizer, SeqTokenizer, TokenizerPair, tokenizer_from_dict

__all__ = ["LengthBuckets", "LabelledDataset", "PairDataset", "pad_batch", "CLASSIFIER_TASKS", "SEQ2SEQ_TASKS",
           "TaskData", "classifier_task", "seq2seq_task", "TextDataset", "default_corpus", "load_text",
           "BPETokenizer", "CharTokenizer", "SeqTokenizer", "TokenizerPair", "tokenizer_from_dict"]
