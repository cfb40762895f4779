"""The thread count fitted to the machine's load (kernels/threads.py)."""
import itertools
import os
import time
from types import SimpleNamespace

import numba
import numpy as np
import pytest

from transformer_jit import kernels as K
from transformer_jit.kernels import threads


@pytest.fixture
def watch():
    """This thread's watch, fresh and on, and the thread count given back afterwards."""
    before = numba.get_num_threads()
    was_adaptive = threads.set_adaptive_threads(True)
    yield threads._watch
    threads.set_adaptive_threads(was_adaptive)
    numba.set_num_threads(before)


@pytest.mark.parametrize("n_cores, others, free", [
    (2, 0.0, 2), (2, 0.2, 2), (2, 0.3, 1), (2, 0.7, 1), (2, 1.0, 1), (2, 2.0, 1), (2, 5.0, 1),
    (16, 0.0, 16), (16, 3.1, 13), (16, 3.3, 12), (1, 0.9, 1), (4, -0.1, 4),
])
def test_free_cores(n_cores, others, free):
    assert threads.free_cores(n_cores, others) == free


@pytest.mark.parametrize("value, adaptive", [
    (None, True), ("1", True), ("yes", True), ("0", False), (" off ", False), ("False", False), ("no", False),
])
def test_the_environment_variable_turns_the_fitting_off(monkeypatch, value, adaptive):
    if value is None:
        monkeypatch.delenv("TRANSFORMER_JIT_ADAPTIVE_THREADS", raising=False)
    else:
        monkeypatch.setenv("TRANSFORMER_JIT_ADAPTIVE_THREADS", value)
    assert threads.adaptive_by_default() is adaptive


def test_busy_seconds_reads_the_listed_cores(tmp_path):
    stat = tmp_path / "stat"
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  999 0 999 999 0 0 0 0 0 0\n"
                    "cpu0 100 20 30 5000 40 5 5 10 7 0\n"
                    "cpu1 1 2 3 4 5 6 7 8 0 0\n"
                    "cpu12 1000 0 0 0 0 0 0 0 0 0\n"
                    "intr 123 4 5 6 7 8 9 10 11\n")
    busy = (100 + 20 + 30 + 5 + 5 + 10) + (1 + 2 + 3 + 6 + 7 + 8)  # idle and iowait left out; guest is in user
    assert threads.busy_seconds({0, 1}, stat) == pytest.approx(busy / ticks_per_second)
    assert threads.busy_seconds({12}, stat) == pytest.approx(1000 / ticks_per_second)
    assert threads.busy_seconds({5}, stat) == 0
    assert threads.busy_seconds({0}, tmp_path / "missing") is None


def test_the_count_follows_the_load_and_never_passes_the_ceiling(watch):
    numba.set_num_threads(1 if numba.config.NUMBA_NUM_THREADS == 1 else 2)
    ceiling = numba.get_num_threads()
    watch.cpus = set(range(4))  # pretend to four cores
    seconds = itertools.count()

    def read(others_busy, own_busy=1.0):
        """One reading after a second in which other programs kept `others_busy` cores busy."""
        watch.observe(next(seconds), watch.busy + others_busy + own_busy, watch.own + own_busy)
        return numba.get_num_threads()

    watch.observe(next(seconds), 0.0, 0.0)  # the first reading only starts the count
    assert numba.get_num_threads() == ceiling
    assert read(0.1) == ceiling
    assert read(3.0) == 1  # one core left of four
    assert read(3.0) == 1
    assert read(0.2) == ceiling  # the others are gone: back to the ceiling, not past it
    numba.set_num_threads(1)  # chosen by the user: the new ceiling
    assert read(0.0) == 1


def test_no_counters_leave_the_count_alone(watch):
    before = numba.get_num_threads()
    watch.observe(0.0, None, 0.0)
    watch.update()
    assert numba.get_num_threads() == before
    assert watch.read_at == float("inf")  # and nothing is read again


def test_turned_off_the_count_is_given_back(watch):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two threads")
    numba.set_num_threads(2)
    watch.cpus = {0, 1}
    watch.observe(0.0, 0.0, 0.0)
    watch.observe(1.0, 2.0, 0.5)  # others kept 1.5 cores busy
    assert numba.get_num_threads() == 1
    assert threads.set_adaptive_threads(False) is True
    assert numba.get_num_threads() == 2
    K.add_(np.ones(8), np.ones(8))  # a kernel call no longer reads the load
    assert watch.read_at is None


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two threads")
def test_kernel_calls_read_the_load_and_follow_it(watch, monkeypatch):
    """Kernel calls from Python read the load (no more than once an interval) and set the count
    from it: a busy program beside them takes a core, and gives it back when it ends. The clock and
    the counters are scripted, so what is tested is the logic, not how idle this machine is."""
    numba.set_num_threads(2)
    watch.cpus = {0, 1}
    clock = {"now": 0.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(threads, "time", SimpleNamespace(monotonic=lambda: clock["now"],
                                                         process_time=lambda: clock["own"]))
    monkeypatch.setattr(threads, "busy_seconds", lambda cpus: clock["busy"] if cpus == {0, 1} else None)
    a = np.ones(8)

    def kernel_call_after(seconds, others_busy):
        """A kernel call `seconds` after the last, other programs keeping `others_busy` cores busy."""
        clock["now"] += seconds
        clock["own"] += seconds  # this process keeps one core busy
        clock["busy"] += seconds * (1.0 + others_busy)
        K.add_(a, a)
        return numba.get_num_threads()

    assert kernel_call_after(0.0, 0.0) == 2  # the first reading starts the count
    assert kernel_call_after(1.0, 1.0) == 1  # a busy program beside us
    assert kernel_call_after(threads.INTERVAL / 2, 0.0) == 1  # too soon to read again
    assert kernel_call_after(1.0, 0.0) == 2  # it ended: the core is back


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux's counters")
def test_the_counters_count_this_process_as_busy():
    """Whatever else runs, the cores this process runs on were busy at least while it computed:
    the reading of /proc/stat that the count is fitted to sees this process's own CPU time."""
    cpus = os.sched_getaffinity(0)
    busy, own = threads.busy_seconds(cpus), time.process_time()
    while time.process_time() - own < 0.5:
        pass
    spent = time.process_time() - own
    tick = 1 / os.sysconf("SC_CLK_TCK")
    assert threads.busy_seconds(cpus) - busy >= 0.8 * spent - 2 * len(cpus) * tick


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two threads")
def test_training_and_generation_give_the_same_bits_on_any_thread_count(tmp_path, fixed_threads):
    """What lets the count change in the middle of a run: training steps (dropout on, products
    large enough to be split over the depth) and generation give the same bits on one thread, on
    two, and on a count that changes every step."""
    from transformer_jit import GPT, CharTokenizer, GPTConfig, TextDataset, TrainConfig, Trainer

    text = "the quick brown fox jumps over the lazy dog. " * 80
    tokenizer = CharTokenizer.from_text(text)

    def run(counts):
        config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=4, n_embd=64,
                           dropout=0.1, attn_dropout=0.1)
        train = TrainConfig(batch_size=16, max_iters=len(counts), lr=3e-3, warmup_iters=2, out_dir=str(tmp_path))
        trainer = Trainer(GPT(config, seed=1), TextDataset(tokenizer.encode(text), 32), train, tokenizer,
                          log=lambda msg: None)
        for n in counts:
            fixed_threads(n)
            trainer.train_step()
        trainer.model.eval()
        sample = trainer.model.generate(tokenizer.encode("the ")[None, :], 20, temperature=1.0, seed=0)
        return trainer.model.params.copy(), np.asarray(sample)

    params, sample = run([2, 2, 2, 2])
    for counts in ([1, 1, 1, 1], [1, 2, 1, 2]):
        other_params, other_sample = run(counts)
        assert np.array_equal(params, other_params), counts
        assert np.array_equal(sample, other_sample), counts
