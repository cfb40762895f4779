"""`sample` with several prompts: repeated --prompt or an --input file of one prompt per line,
sampled together, printed or written whole to --output."""
import pytest
from refusals import assert_refused

from transformer_jit import GPT
from transformer_jit.cli import main
from transformer_jit.train.saved_model import load_model

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 40
PROMPTS = ["the ", "a lazy", "fox"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample-prompts")
    (root / "input.txt").write_text(TEXT)
    assert main(["train", "--data", str(root / "input.txt"), "--out-dir", str(root / "run"), "--max-iters", "4",
                 "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "8", "--batch-size", "4",
                 "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0"]) == 0
    return root


def expected_samples(run):
    """What `sample --seed 3 --max-new-tokens 12` gives for PROMPTS, from the library."""
    model, tokenizer, _ = load_model(run / "run" / "best.npz")
    out = model.generate([tokenizer.encode(p) for p in PROMPTS], 12, temperature=0.8, seed=3)
    return "".join(f"--- sample {i} of 3 ---\n{tokenizer.decode(row)}\n" for i, row in enumerate(out, 1))


def test_several_prompts_are_sampled_together_and_each_printed(run, capsys):
    argv = ["sample", "--out-dir", str(run / "run"), "--max-new-tokens", "12", "--seed", "3"]
    capsys.readouterr()
    assert main([*argv, *[a for p in PROMPTS for a in ("--prompt", p)]]) == 0
    printed = capsys.readouterr().out
    assert printed == expected_samples(run)

    (run / "prompts.txt").write_text("".join(p + "\n" for p in PROMPTS))
    assert main([*argv, "--input", str(run / "prompts.txt"), "--output", str(run / "samples.txt")]) == 0
    assert (run / "samples.txt").read_text() == printed
    assert "wrote 3 samples to" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--prompt", "the", "--input", "{root}/prompts.txt"], "give prompts with --prompt or --input FILE, not both"),
    (["--input", "{root}/gaps.txt"], "gaps.txt line 2 is empty: every line is a prompt"),
    (["--input", "{root}/none.txt"], "none.txt holds no prompts"),
    (["--input", "{root}/prompts.txt", "--output", "{root}/prompts.txt"], "--output {root}/prompts.txt is --input"),
    (["--output", "{root}/run/best.npz"], "is --out-dir's {root}/run/best.npz"),
    (["--output", "{root}/run/../run/metrics.csv"], "is --out-dir's"),
    (["--output", "{root}/run"], "is --out-dir"),
])
def test_bad_prompt_inputs_and_outputs_are_refused(run, capsys, monkeypatch, args, message):
    (run / "prompts.txt").write_text("the \n")
    (run / "gaps.txt").write_text("the \n\nfox\n")
    (run / "none.txt").write_text("")
    argv = ["sample", "--out-dir", str(run / "run"), *[a.format(root=run) for a in args]]
    assert_refused(argv, message.format(root=run), run, capsys, monkeypatch)


@pytest.mark.parametrize("weights", ["bfloat16", "int8"])
def test_weights_choose_the_copies_each_new_token_reads(run, capsys, monkeypatch, weights):
    model, tokenizer, _ = load_model(run / "run" / "best.npz")
    expected = tokenizer.decode(model.generate([tokenizer.encode("the ")], 12, temperature=0.8, seed=3,
                                               weights=weights)[0]) + "\n"
    asked = []
    generate = GPT.generate
    monkeypatch.setattr(GPT, "generate", lambda self, *a, **kw: asked.append(kw["weights"]) or generate(self, *a, **kw))
    capsys.readouterr()
    assert main(["sample", "--out-dir", str(run / "run"), "--max-new-tokens", "12", "--seed", "3", "--prompt", "the ",
                 "--weights", weights]) == 0
    assert asked == [weights] and capsys.readouterr().out == expected
