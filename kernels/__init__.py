"""Kernels: every hot loop of the transformer, as plain Python loops compiled by Numba.

Shape legend used in every kernel's shape comment:
    B   batch size
    T   sequence length (queries)
    S   source length (keys/values in cross-attention; S = T in self-attention)
    C   channels (model width, d_model)
    OC  output channels of a linear layer
    NH  number of attention heads
    hs  head size, C // NH
    V   vocabulary size
    N   number of rows when batch and time are flattened together (N = B * T)
  and for images (patches.py):
    CI  image channels; H, W image height and width; P patch side
    NP  number of patches, (H / P)(W / P); CPP = CI * P * P numbers per patch

Conventions (see each module):
- `<op>_forward` and `<op>_backward` live side by side; arguments are outputs first, then inputs,
  then sizes and options.
- Backward kernels ACCUMULATE (+=) into gradient buffers; the owner zeroes them once per step.
  Those whose input gradient usually goes to a fresh temporary (activations, linear, attention)
  take an `accumulate` flag: False overwrites that gradient instead, so it needs no zeroing.
- Forward writes what backward needs (means, probabilities, masks) into caller-owned buffers.
- Kernels are dtype-generic: float32 for training, float64 for gradient checks. Constants are
  made in the input's dtype, so float32 arithmetic never silently becomes float64.
- Kernels do not validate their arguments (that would cost time in every call); the classes in
  `transformer_jit` check shapes, dtypes and contiguity where users call in.
- `kernel.py_func(...)` runs the same loops interpreted, without compiling; `_jit.interpreted`
  interprets the kernels it calls too.

What the models in `transformer_jit` use: linear and matmul (the tied lm heads), attention (global,
or local_attention_forward/backward within a window, with band_width), layer norm, GELU (the tanh
approximation, or exact through normal_cdf.py) and ReLU, residual_forward and add_, dropout, token
and positional embeddings (learned or sinusoidal), mean pooling, cross-entropy with count_targets,
softmax_forward and log_softmax_forward (sampling, decoding), the optimizer steps, clip_grad_norm
(with grad_norm) and scale_. Generation, one token per sequence at a time, adds matvec (a weight
matrix times a few vectors, at memory speed, float32 or bfloat16 weights, each row of x summed in
one fixed order), matvec_int8 (the same over int8 weights with a scale per block of 32, int8.py,
the rows of x rounded alike, in integer dot products), kv_attention_forward (attention of a new
position over a cache of keys and values, or with a window over a rolling cache of the last W),
bfloat16_from_float32 and quantize_int8 (dequantize_int8 gives back the values an int8 matrix
stands for, round_to_int8 the rows matvec_int8 makes of x). The vision transformer adds
patches_forward (an image cut into flattened patches) and the class token's pair; its
patches_backward gives a gradient with respect to the pixels, which training does not need.

What the BPE tokenizer (transformer_jit/data/tokenizers/bpe.py) uses, over byte and token-id arrays rather
than float tensors: pretokenize.py (GPT-2's pre-tokenizer as a state machine: piece_end,
pretokenize, and split_point / last_split_point, where a text may be cut and encoded in parts),
bpe.py (bpe_encode and bpe_encode_parallel, compact_spans, decoded_length and bpe_decode, and
build_pair_table / build_piece_table for its lookup tables) and bpe_train.py (count_pieces,
bpe_train_init, bpe_train_merges).

What image datasets (transformer_jit/data/images.py) use: images.py's pixels_from_images, a batch
of uint8 images gathered, shifted and normalised into float pixels, channels first.

The rest are kept on purpose as the teaching set, each derivative worked out next to its forward,
and only tests and benchmarks call them: leaky ReLU, sigmoid and tanh; MSE; softmax_backward and
log_softmax_backward; the explicit softmax_jacobian and its products softmax_jvp and softmax_vjp
(attention inlines the VJP; the cross-entropy's gradient p - q needs no Jacobian); residual_backward
(its identity Jacobian).

How many threads: threads.py fits each thread's Numba thread count to the cores that other
programs leave free, before any kernel called from Python runs (`fit_threads_to_load`);
`set_adaptive_threads(False)` keeps the count where the user sets it.

Internals shared between modules: tiles.py (the parts of a tiled matrix product), stack_alloc.py
(stack arrays for register accumulators), vectors.py (a row seen as vectors, without a reshape's
cost), prefetch.py, fast_exp.py (vectorizable exp and sigmoid),
normal_cdf.py (the normal distribution function and density, for the exact GELU), bfloat16.py's
`widen` (bfloat16 bits to float32 inside a loop), int8.py's `widen_scaled` (a vector of int8
weights to floats, scaled), matvec.py's `finish_output` (bias, GELU and
residual add after a dot product), hash_tables.py and heap.py (the BPE kernels' lookup tables and
priority queue).
"""
if __name__ == "kernels":  # not transformer_jit.kernels: see _folder_name.py
    from ._folder_name import hand_over
    hand_over(__file__)
else:
    from .activations import (
        gelu_backward, gelu_erf_backward, gelu_erf_forward, gelu_forward, leaky_relu_backward, leaky_relu_forward,
        relu_backward, relu_forward, sigmoid_backward, sigmoid_forward, tanh_backward, tanh_forward,
    )
    from .attention import attention_backward, attention_forward
    from .bfloat16 import bfloat16_from_float32
    from .bpe import (
        bpe_decode, bpe_encode, bpe_encode_parallel, build_pair_table, build_piece_table, compact_spans, decoded_length,
    )
    from .bpe_train import bpe_train_init, bpe_train_merges, count_pieces
    from .dropout import dropout_backward, dropout_forward
    from .elementwise import add_, residual_backward, residual_forward
    from .embedding import (
        embedding_backward, embedding_forward, positional_backward, positional_forward, sinusoidal_table,
    )
    from .images import pixels_from_images
    from .int8 import dequantize_int8, quantize_int8, round_to_int8
    from .kv_attention import kv_attention_forward
    from .layernorm import layernorm_backward, layernorm_forward
    from .linear import linear_backward, linear_forward
    from .local_attention import band_width, local_attention_backward, local_attention_forward
    from .losses import count_targets, cross_entropy_backward, cross_entropy_forward, mse_backward, mse_forward
    from .matvec import matvec
    from .matvec_int8 import matvec_int8
    from .optimizers import (
        adagrad_step, adam_step, adamw_step, clip_grad_norm, grad_norm, momentum_step, rmsprop_step, scale_,
        sgd_step,
    )
    from .patches import class_token_backward, class_token_forward, patches_backward, patches_forward
    from .pooling import mean_pool_backward, mean_pool_forward
    from .pretokenize import last_split_point, piece_end, pretokenize, split_point
    from .softmax import (
        log_softmax_backward, log_softmax_forward, softmax_backward, softmax_forward, softmax_jacobian, softmax_jvp,
        softmax_vjp,
    )
    from .threads import fit_threads_to_load, set_adaptive_threads
