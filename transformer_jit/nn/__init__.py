"""Parameters and layers: everything a model is assembled from.

    parameters  one flat buffer for all parameters, one for their gradients, named views into both
    layers      Linear, LayerNorm, GELU, ReLU, Dropout, Embedding, PositionalEncoding
    attention   self-attention and cross-attention
    block       a transformer block: residual sub-layers with their layer norms
    stack       the transformer stack: embeddings, positions, blocks, final layer norm
    head        cross-entropy, and the language-model head (logits = h Wᵀ) with it
    model       the base of every model: buffers, modes, dropout seeds, attention maps
"""
from .attention import CrossAttention, SelfAttention
from .block import MLP, Block
from .head import CrossEntropy, LMHead
from .layers import GELU, Dropout, Embedding, Layer, LayerNorm, Linear, PositionalEncoding, ReLU
from .model import Model
from .parameters import Parameter, ParameterStore
from .stack import TransformerDecoder, TransformerEncoder, TransformerStack

__all__ = ["CrossAttention", "SelfAttention", "MLP", "Block", "CrossEntropy", "LMHead", "GELU", "Dropout",
           "Embedding", "Layer", "LayerNorm", "Linear", "PositionalEncoding", "ReLU", "Model", "Parameter",
           "ParameterStore", "TransformerDecoder", "TransformerEncoder", "TransformerStack"]
