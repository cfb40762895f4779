"""Data-parallel training through the library, run by tests/test_distributed.py under mpiexec:

    python tests/mpi_worker.py train-then-raise OUT_DIR    train a seq2seq model (rank 0 saves it to
                                                          OUT_DIR), then rank 1 raises
    python tests/mpi_worker.py hang                       rank 1 never joins a collective (the ranks
                                                          first meet unwatched, however late one starts)

The data are pairs of varying lengths, padded per batch, so the ranks' slices count different
numbers of targets: averaging their gradients without weighting them by the counts would be wrong.
"""
import sys
import time

import numpy as np

from transformer_jit.models import Seq2SeqConfig, Seq2SeqTransformer
from transformer_jit.train import TrainConfig, Trainer
from transformer_jit.train.distributed import Distributed

PAD, BOS, EOS, VOCAB, LONGEST = 0, 1, 2, 11, 7


class VaryingPairs:
    """(src, tgt_in, tgt_out) batches of random token sequences of 1 to LONGEST tokens; the target is
    the source reversed."""

    def __init__(self, n=64, seed=0):
        rng = np.random.default_rng(seed)
        self.sources = [rng.integers(3, VOCAB, rng.integers(1, LONGEST + 1)) for _ in range(n)]

    def batch(self, split, batch_size, rng):
        chosen = [self.sources[i] for i in rng.integers(0, len(self.sources), batch_size)]
        longest = max(len(s) for s in chosen)
        src = np.full((batch_size, longest), PAD, np.int64)
        tgt_in = np.full((batch_size, longest + 1), PAD, np.int64)
        tgt_out = np.full((batch_size, longest + 1), PAD, np.int64)
        for row, s in enumerate(chosen):
            src[row, :len(s)] = s
            tgt_in[row, :len(s) + 1] = [BOS, *s[::-1]]
            tgt_out[row, :len(s) + 1] = [*s[::-1], EOS]
        return src, tgt_in, tgt_out


def seq2seq_trainer(out_dir, batch_size, distributed=None):
    config = Seq2SeqConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, max_src_len=LONGEST, max_tgt_len=LONGEST + 1,
                           n_encoder_layer=1, n_decoder_layer=1, n_head=2, n_embd=16, bias=False)
    train = TrainConfig(batch_size=batch_size, max_iters=8, lr=1e-2, warmup_iters=2, eval_interval=4, eval_iters=2,
                        out_dir=str(out_dir))
    return Trainer(Seq2SeqTransformer(config, seed=3), VaryingPairs(), train, kind="seq2seq",
                   distributed=distributed)


if __name__ == "__main__":
    if sys.argv[1] == "hang":
        from mpi4py import MPI
        MPI.COMM_WORLD.Barrier()  # both ranks started, unwatched: only the hang below may time out
    world = Distributed.from_environment()
    if sys.argv[1] == "train-then-raise":
        seq2seq_trainer(sys.argv[2], 2, world).fit()
        world.sum([0], "the end of training")
        if world.rank == 1:
            raise RuntimeError("injected failure")
        world.sum([0], "waiting for rank 1")
    elif sys.argv[1] == "hang":
        if world.rank == 1:
            time.sleep(600)
        world.sum([0], "the test collective")
