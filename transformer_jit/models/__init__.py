"""The models, assembled from nn's layers, and what runs them.

    configs          GPTConfig, EncoderConfig, ClassifierConfig, Seq2SeqConfig, ViTConfig: checked dataclasses
    registry         MODELS: each model kind ("gpt", "seq2seq", "classifier", "vit") -> (model class, config class)
    gpt              GPT: the decoder-only language model, with sampling
    classifier       EncoderClassifier: an encoder, pooling and a linear layer; classify (texts -> classes)
    seq2seq          Seq2SeqTransformer: the encoder-decoder of "Attention Is All You Need"
    vit              VisionTransformer: images cut into patches, an encoder, a classifier on the class token;
                     Hugging Face's ViTForImageClassification files read and written
    translation      greedy and beam-search decoding of an encoder-decoder; translate (texts -> texts)
    attention_maps   attention probabilities rendered as text or PNG; a vision transformer's class-token maps
    perplexity       evaluate_perplexity: loss, perplexity and bits per byte of a text, the context sliding
"""
from .classifier import EncoderClassifier, classify
from .configs import ClassifierConfig, EncoderConfig, GPTConfig, ModelConfig, Seq2SeqConfig, ViTConfig
from .gpt import GPT
from .perplexity import Perplexity, evaluate_perplexity, token_byte_lengths
from .registry import MODELS
from .seq2seq import Seq2SeqTransformer
from .translation import beam_search, greedy_decode, translate
from .vit import VisionTransformer

__all__ = ["EncoderClassifier", "classify", "ClassifierConfig", "EncoderConfig", "GPTConfig", "ModelConfig",
           "Seq2SeqConfig", "GPT", "MODELS", "Perplexity", "evaluate_perplexity", "token_byte_lengths",
           "Seq2SeqTransformer", "beam_search", "greedy_decode", "translate", "ViTConfig", "VisionTransformer"]
