import json

import pytest
import safetensors.torch
import torch
from conftest import SHARED_DATA

from brainlearn.algorithms.ff_sequence import SequenceFF, SequenceFFConfig, train, windows_of
from brainlearn.cli import main
from brainlearn.data.text import ALPHABET, Book, encode
from brainlearn.experiments.ff_sequence import generate_text, load_model, save_model

TEXT = "the cat sat on the mat. the dog sat on the log. " * 30


@pytest.fixture(scope="module")
def book() -> Book:
    symbols = encode(TEXT)[: 40 * 30].view(40, 30)
    return Book("toy", symbols[:30], symbols[30:])


def model(**config) -> SequenceFF:
    return SequenceFF(30, SequenceFFConfig(**{"hidden": (64, 64), "context": 5, **config}), seed=0)


def test_windows_cover_every_position_of_every_string():
    strings = torch.arange(12).view(2, 6)
    windows = windows_of(strings, 4)
    assert windows.tolist() == [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [6, 7, 8, 9], [7, 8, 9, 10], [8, 9, 10, 11]]


def test_teacher_forced_negatives_keep_the_real_prefix_and_take_the_nets_own_sample(book):
    net = model()
    real = windows_of(book.train, 5)[:200]
    negative = net.teacher_forced(real)
    assert torch.equal(negative[:, :-1], real[:, :-1])
    assert 0 <= negative[:, -1].min() and negative[:, -1].max() < 30
    assert not torch.equal(negative[:, -1], real[:, -1])  # an untrained net does not know the text


def test_sampling_follows_the_goodness_distribution():
    net = model(temperature=1e-6)  # almost greedy: the candidate of highest goodness
    prefixes = torch.randint(0, 30, (20, 4), generator=torch.Generator().manual_seed(1))
    assert torch.equal(net.sample_next(prefixes), net.candidate_goodness(prefixes).argmax(1))


def test_generated_strings_start_with_the_real_characters(book):
    net = model()
    strings = net.generate(book.train[:3, :5], 30)
    assert strings.shape == (3, 30) and torch.equal(strings[:, :5], book.train[:3, :5])


def test_dreamed_negatives_are_the_windows_that_hold_a_generated_character(book):
    """A string continued from its first 5 real symbols to 30 gives 25 negative windows: not its first window,
    which is real text (positive data)."""
    strings = book.train[:4, :30]
    windows = model().dreamed_windows(strings)
    assert windows.shape == (4 * 25, 5)
    first_windows = {tuple(row) for row in strings[:, :5].tolist()}
    assert not first_windows & {tuple(row) for row in windows.tolist()}
    dreams = model().generate(strings[:, :5], 30)  # the same net, the same draws
    assert sorted(windows.tolist()) == sorted(windows_of(dreams[:, 1:], 5).tolist())


def test_fresh_dreams_are_as_many_negatives_as_asked_from_as_few_strings_as_give_them(book):
    """30-symbol strings continued from 5 real symbols give 25 dreamed windows each: 60 negatives take 3 strings,
    none of them a string's real first window, each window one of the dreamed strings' (the same draws)."""
    strings = book.train[:, :30]
    negatives = model().fresh_dreams(strings, 60)
    assert negatives.shape == (60, 5)
    first_windows = {tuple(row) for row in strings[:, :5].tolist()}
    assert not first_windows & {tuple(row) for row in negatives.tolist()}
    net = model()
    picks = torch.randint(len(strings), (3,), generator=net.generator)
    dreamed = {tuple(row) for row in windows_of(net.generate(strings[picks, :5], 30)[:, 1:], 5).tolist()}
    assert {tuple(row) for row in negatives.tolist()} <= dreamed


def test_short_dreams_from_random_starts_keep_real_context_and_their_length(book):
    """dream_start="random", dream_length=3: each dream is 5 real symbols from somewhere in a string, then 3
    generated; its 3 negatives hold 1, 2 and 3 generated symbols, so each keeps real context, and 60 negatives take
    20 strings. The same seed gives the same dreams."""
    strings = book.train[:, :30]
    net = model(negatives="self-generated", dream_start="random", dream_length=3)
    negatives = net.fresh_dreams(strings, 60)
    assert negatives.shape == (60, 5)
    again = model(negatives="self-generated", dream_start="random", dream_length=3).fresh_dreams(strings, 60)
    assert torch.equal(negatives, again)
    real_windows = {tuple(row) for row in windows_of(strings, 5).tolist()}
    replay = model(negatives="self-generated", dream_start="random", dream_length=3)
    picks = torch.randint(len(strings), (20,), generator=replay.generator)
    offsets = torch.randint(26, (20, 1), generator=replay.generator)
    assert len(set(offsets.flatten().tolist())) > 1  # not all from the same place
    starts = strings[picks].gather(1, offsets + torch.arange(5))
    assert {tuple(row) for row in starts.tolist()} <= real_windows
    dreams = replay.generate(starts, 8)
    assert sorted(negatives.tolist()) == sorted(windows_of(dreams[:, 1:], 5).tolist())
    for generated in (1, 2, 3):  # the window holding `generated` sampled symbols keeps 5 - generated real ones
        assert torch.equal(dreams[:, generated:5], windows_of(dreams[:, 1:], 5).view(20, 3, 5)[:, generated - 1,
                                                                                                  :5 - generated])


def test_a_sleep_block_uses_one_term_of_the_loss_each():
    """Positive-only steps raise the goodness of real windows; negative-only steps lower it of the negatives."""
    net = model(lr=1e-2)
    windows = torch.randint(0, 30, (50, 5), generator=torch.Generator().manual_seed(2))
    x = net.one_hot(windows)

    def total_goodness():
        return sum(a.pow(2).sum(1).mean() for a in net.activities(x)).item()

    start = total_goodness()
    for _ in range(20):
        net.learn(windows, None)
    awake = total_goodness()
    for _ in range(40):
        net.learn(None, windows)
    assert awake > start and total_goodness() < awake


@pytest.mark.parametrize("changes", [{}, {"negatives": "self-generated"},
                                     {"negatives": "self-generated", "dream_every": "epoch"},
                                     {"negatives": "self-generated", "dream_start": "random", "dream_length": 4},
                                     {"schedule": "separated", "block": 3}])
def test_ff_learns_to_predict_the_next_character(book, changes):
    net = model(lr=3e-3, **changes)
    test_windows = windows_of(book.test, 5)
    before = net.errors(test_windows)["error_goodness"]
    history = train(net, book.train, book.test, epochs=8, batch_size=20)
    unigram = (test_windows[:, -1] != torch.bincount(book.train.flatten()).argmax()).float().mean().item()
    assert history[-1]["error_goodness"] < min(before, unigram) - 0.05, (before, unigram, history[-1])


def test_the_frozen_baseline_trains_only_its_softmax(book):
    net = SequenceFF(30, SequenceFFConfig(hidden=(32,), context=5), seed=0, learn_hidden=False)
    weights = net.layers[0].weight.detach().clone()
    train(net, book.train, book.test, epochs=1, batch_size=20)
    assert torch.equal(weights, net.layers[0].weight) and not net.optimizers


def test_config_is_checked():
    for bad in (dict(context=1), dict(lr=0), dict(block=0), dict(temperature=0), dict(negatives="dreams"),
                dict(schedule="nap"), dict(dream_every="night"), dict(dream_start="middle"), dict(dream_length=0)):
        with pytest.raises(ValueError):
            SequenceFFConfig(**bad)


def test_the_benchmark_writes_its_result(tmp_path):
    shared = tmp_path / "data" / "text"
    shared.mkdir(parents=True)
    source = SHARED_DATA / "text" / "botchan.txt"
    if not source.exists():
        pytest.skip(f"no copy of the book at {source}")
    (shared / "botchan.txt").write_bytes(source.read_bytes())
    assert main(["bench", "ff-sequence", "--data-dir", str(tmp_path / "data"), "--no-download", "--hidden", "16",
                 "--epochs", "1", "--test-strings", "5", "--seeds", "0", "1", "--out-dir", str(tmp_path),
                 "--save-models", str(tmp_path / "models"), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "self-generated-9-character-dreams-from-random-starts.safetensors", "self-generated.safetensors",
        "teacher-forcing-sleep-lr-3.safetensors", "teacher-forcing-sleep.safetensors", "teacher-forcing.safetensors"]
    result = json.loads((tmp_path / "ff_sequence_botchan-16.json").read_text())  # another net than the preset's
    assert not (tmp_path / "ff_sequence_botchan.json").exists()
    assert result["train_config"]["device"] == "cpu"  # --device auto, on a machine without a GPU here
    assert set(result["runs"]) >= {"teacher forcing", "self-generated", "teacher forcing, sleep",
                                   "frozen random hidden layers"}
    assert {"unigram", "bigram", "backprop twin", "bigram_bits"} <= set(result["baselines"])
    assert result["seeds"] == [0, 1] and [one["seed"] for one in result["baselines"]["backprop twin"]["seeds"]] == [0, 1]
    first, second = (one["history"][-1] for one in result["runs"]["teacher forcing"]["seeds"])
    assert {"bits_goodness", "bits_softmax"} <= set(first) and first["bits_softmax"] > 0
    assert first != second  # each seed its own run
    table = (tmp_path / "ff_sequence_botchan-16.md").read_text()
    assert "| FF, self-generated |" in table and "mean over seeds [0, 1]" in table
    short = result["runs"]["self-generated, 9-character dreams from random starts"]["config"]
    assert (short["dream_start"], short["dream_length"]) == ("random", 9)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_the_benchmark_refuses_a_device_that_is_not_there(capsys):
    with pytest.raises(SystemExit) as refused:
        main(["bench", "ff-sequence", "--device", "cuda", "--epochs", "1"])
    assert refused.value.code == 2 and "cuda" in capsys.readouterr().err


def test_the_net_its_generator_and_its_training_stay_on_the_requested_device(book):
    net = SequenceFF(30, SequenceFFConfig(hidden=(16, 16), context=5), seed=0, device="cpu")
    assert net.device.type == net.generator.device.type == "cpu"
    train(net, book.train, book.test, 1)
    assert all(state["exp_avg"].device.type == "cpu" for optimizer in net.optimizers
               for state in optimizer.state.values())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_a_run_on_cuda_starts_from_the_same_weights_and_learns_as_on_the_cpu(book):
    """The same initial weights on both devices; after a few epochs (different random streams, so not the same
    numbers) both beat the unigram predictor, as in the CPU test above."""
    config = SequenceFFConfig(hidden=(64, 64), context=5, lr=3e-3)
    nets = {device: SequenceFF(30, config, seed=0, device=device) for device in ("cpu", "cuda")}
    assert torch.equal(nets["cpu"].layers[0].weight, nets["cuda"].layers[0].weight.cpu())
    test_windows = windows_of(book.test, 5)
    unigram = (test_windows[:, -1] != torch.bincount(book.train.flatten()).argmax()).float().mean().item()
    for device, net in nets.items():
        history = train(net, book.train, book.test, epochs=8, batch_size=20)
        assert net.layers[0].weight.device.type == device, device
        assert history[-1]["error_goodness"] < unigram - 0.05, (device, unigram, history[-1])


def test_generation_is_reproducible_with_a_seed(book):
    first, second = model().generate(book.train[:2, :5], 40), model().generate(book.train[:2, :5], 40)
    assert torch.equal(first, second) and first.max() < 30


def test_no_gradient_crosses_a_layer():
    """Each layer's update comes from its own loss: a layer learns the same whether the layers above it learn
    or not."""
    windows = torch.randint(0, 30, (40, 5), generator=torch.Generator().manual_seed(3))
    negative = torch.randint(0, 30, (40, 5), generator=torch.Generator().manual_seed(4))
    full, first_only = model(lr=1e-2), model(lr=1e-2)
    first_only.optimizers = first_only.optimizers[:1]  # the layer above never steps
    for net in (full, first_only):
        for _ in range(5):
            net.learn(windows, negative)
    assert torch.equal(full.layers[0].weight, first_only.layers[0].weight)
    assert not torch.equal(full.layers[1].weight, first_only.layers[1].weight)


def test_a_saved_net_writes_the_same_text_after_loading(book, tmp_path, capsys):
    """save_model / load_model keep every weight and the config; generation is reproducible under a seed, lowercases
    the prompt, and `brainlearn generate` prints exactly that text."""
    net = model()
    train(net, book.train, book.test, epochs=1)
    path = tmp_path / "teacher forcing.safetensors"
    save_model(net, path, book, "teacher forcing", 0)
    loaded, alphabet = load_model(path)
    assert alphabet == ALPHABET and loaded.config == net.config
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded.state_dict().values()))
    text = generate_text(net, ALPHABET, "the cat", 40, seed=3)
    assert generate_text(loaded, alphabet, "The Cat", 40, seed=3) == text
    assert len(text) == 47 and text.startswith("the cat") and set(text) <= set(ALPHABET)
    assert main(["generate", str(path), "--prompt", "the cat", "--length", "40", "--seed", "3"]) == 0
    assert capsys.readouterr().out == text + "\n"


def test_a_temperature_given_for_one_generation_leaves_the_nets_own():
    net = model()
    own = net.config
    greedy = generate_text(net, ALPHABET, "the cat", 40, seed=3, temperature=1e-6)
    assert net.config is own
    assert generate_text(net, ALPHABET, "the cat", 40, seed=4, temperature=1e-6) == greedy  # the seed no longer matters
    assert generate_text(net, ALPHABET, "the cat", 40, seed=4) != greedy  # the net's own T samples


@pytest.mark.parametrize("flags, message", [
    (["--prompt", "the cat?"], "outside the net's alphabet"), (["--prompt", "the"], "at least 4 symbols"),
    (["--prompt", "the cat", "--temperature", "0"], "temperature"), (["--prompt", "the cat", "--length", "-1"], "length")])
def test_generate_refuses_a_bad_prompt_or_setting_with_one_line(book, tmp_path, capsys, flags, message):
    path = tmp_path / "net.safetensors"
    save_model(model(), path, book, "teacher forcing", 0)
    with pytest.raises(SystemExit) as exit_:
        main(["generate", str(path), *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_generate_refuses_a_file_that_is_not_a_sequence_net(tmp_path, capsys):
    other = tmp_path / "model.safetensors"
    other.write_bytes(b"not a model")
    assert main(["generate", str(other), "--prompt", "the cat sat"]) == 1
    assert "not a readable safetensors file" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "missing.safetensors"), "--prompt", "the cat sat"]) == 1
    foreign = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"weight": torch.zeros(2)}, foreign)
    assert main(["generate", str(foreign), "--prompt", "the cat sat"]) == 1
    assert "not an FF sequence net" in capsys.readouterr().err
