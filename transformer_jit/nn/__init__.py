"""Parameters and layers: everything a model is assembled from.

    parameters  one flat buffer for all parameters, one for their gradients, named views into both
    context     what one forward carries down to every layer: mode, randomness, masks, memory, cache
    layers      the layer contract; Linear, LayerNorm, GELU, ReLU, Dropout, Embedding, PositionalEncoding
    attention   self-attention (with a key/value cache for generation) and cross-attention
    block       a transformer block: residual sub-layers with their layer norms; the naming styles
    stack       the transformer stack: embeddings, positions, blocks, final layer norm
    loss        cross-entropy, where a backward pass starts
    kv_cache    the keys and values of generation
    model       the base of every model: buffers, modes, the context of a forward, attention maps
"""
from .attention import CrossAttention, SelfAttention
from .block import GPT2, MLP, PAPER, Block, Style
from .context import Context, Memory
from .kv_cache import KVCache
from .layers import GELU, Dropout, Embedding, Layer, LayerNorm, Linear, PositionalEncoding, ReLU
from .loss import CrossEntropy
from .model import Model
from .parameters import Parameter, ParameterStore
from .stack import TransformerDecoder, TransformerEncoder, TransformerStack

__all__ = ["CrossAttention", "SelfAttention", "GPT2", "MLP", "PAPER", "Block", "Style", "Context", "Memory",
           "KVCache", "GELU", "Dropout", "Embedding", "Layer", "LayerNorm", "Linear", "PositionalEncoding", "ReLU",
           "CrossEntropy", "Model", "Parameter", "ParameterStore", "TransformerDecoder", "TransformerEncoder",
           "TransformerStack"]
