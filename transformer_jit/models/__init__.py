"""The models, assembled from nn's layers, and what runs them.

    configs          GPTConfig, EncoderConfig, ClassifierConfig, Seq2SeqConfig: checked dataclasses
    gpt              GPT: the decoder-only language model, with sampling
    classifier       EncoderClassifier: an encoder, pooling and a linear layer
    seq2seq          Seq2SeqTransformer: the encoder-decoder of "Attention Is All You Need"
    decoding         greedy and beam-search decoding of an encoder-decoder
    attention_maps   attention probabilities rendered as text or PNG
"""
from .classifier import EncoderClassifier
from .configs import ClassifierConfig, EncoderConfig, GPTConfig, ModelConfig, Seq2SeqConfig
from .decoding import beam_search, greedy_decode
from .gpt import GPT
from .seq2seq import Seq2SeqTransformer

__all__ = ["EncoderClassifier", "ClassifierConfig", "EncoderConfig", "GPTConfig", "ModelConfig", "Seq2SeqConfig",
           "beam_search", "greedy_decode", "GPT", "Seq2SeqTransformer"]
