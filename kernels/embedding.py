"""Token embeddings (a table lookup) and positional embeddings (learned or sinusoidal).

A token embedding is a linear layer applied to a one-hot vector: onehot(i) @ weight picks row i
of weight. So the forward is a row copy and the backward adds each upstream row into the row it
came from.
"""
import math

from numba import prange

from ._jit import kernel, parallel_kernel


@parallel_kernel
def embedding_forward(out, idx, weight):
    """out[n, :] = weight[idx[n], :]   (overwrites out).

    out    (N, C)  written
    idx    (N,)    int64 token ids, each in [0, V)
    weight (V, C)
    out and weight C-contiguous, one float dtype. Parallel over rows.
    """
    N, C = out.shape
    for n in prange(N):
        i = idx[n]
        for c in range(C):
            out[n, c] = weight[i, c]


@kernel
def embedding_backward(dweight, dout, idx):
    """dweight[idx[n], :] += dout[n, :] for every n   (accumulates).

    dweight (V, C)  +=
    dout    (N, C)  upstream gradient
    idx     (N,)    int64, the forward's token ids
    dweight and dout C-contiguous, one float dtype.

    Forward: y[n, c] = W[idx[n], c], so dy[n, c] / dW[v, c] = 1 if idx[n] == v else 0 and
        dL/dW[v, :] = sum over the n with idx[n] == v of dL/dy[n, :].
    A scatter-add: the same token appears at many positions, so different n add into the same
    row of dweight. Run in parallel over n, two threads could read-add-write one element at the
    same time and lose an update; so this loop is serial. It is O(N C) memory traffic, cheap.
    """
    N, C = dout.shape
    for n in range(N):
        i = idx[n]
        for c in range(C):
            dweight[i, c] += dout[n, c]


@parallel_kernel
def positional_forward(out, inp, table):
    """out[b, t, :] = inp[b, t, :] + table[t, :]   (overwrites out).

    out   (B, T, C)  written; may alias inp (each element is read before it is written)
    inp   (B, T, C)
    table (T_max, C) with T <= T_max: learned position embeddings or a sinusoidal table
    All C-contiguous, one float dtype. Parallel over the B * T rows.
    """
    B, T, C = inp.shape
    for bt in prange(B * T):
        b = bt // T
        t = bt % T
        for c in range(C):
            out[b, t, c] = inp[b, t, c] + table[t, c]


@parallel_kernel
def positional_backward(dtable, dout):
    """dtable[t, :] += sum_b dout[b, t, :] for t < T   (accumulates).

    dtable (T_max, C)  +=, rows t >= T untouched
    dout   (B, T, C)   upstream gradient
    Both C-contiguous, one float dtype.

    Forward: y[b, t, :] = x[b, t, :] + P[t, :]. Each P[t] is added to every sequence of the
    batch, so its gradient is the sum over the batch. (dL/dx = dL/dy unchanged: the caller passes
    dout on to the input's gradient itself.) Parallel over positions t: a thread owns row t of
    dtable, so there are no races.
    """
    B, T, C = dout.shape
    for t in prange(T):
        for b in range(B):
            for c in range(C):
                dtable[t, c] += dout[b, t, c]


@kernel
def sinusoidal_table(out):
    """Fill out with the fixed positional encoding of "Attention Is All You Need"   (overwrites out).

    out (T_max, C), float32 or float64, C-contiguous; C may be odd.

        PE[pos, 2i]   = sin(pos / 10000^(2i / C))
        PE[pos, 2i+1] = cos(pos / 10000^(2i / C))

    Each pair of channels (2i, 2i+1) is a point on the unit circle turning with position at its
    own frequency, from 1 radian per step (i = 0) down to 1/10000 (wavelengths 2 pi ... 10000 * 2 pi).
    Moving k positions rotates every pair by a fixed angle, so PE[pos + k] is a linear function
    of PE[pos]. With odd C the last column is a sin without its cos partner.

    The angle is computed in float64 (pos reaches thousands of radians, where float32 would lose
    digits), then stored in out's dtype. Runs once per model, so accuracy beats speed.
    """
    T_max, C = out.shape
    for pos in range(T_max):
        for j in range(C):
            two_i = j - j % 2  # 2i: the even channel of j's pair
            angle = float(pos) / math.pow(10000.0, float(two_i) / float(C))  # float64
            if j % 2 == 0:
                out[pos, j] = math.sin(angle)
            else:
                out[pos, j] = math.cos(angle)
