"""AWD-LSTM's training side: AR/TAR in the step, NT-ASGD's switch and weight average, variable BPTT's step
size, and a whole run with everything on."""


import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from lstm_lm.cli import app
from lstm_lm.config import load_config
from lstm_lm.data.batches import batchify, bptt_windows
from lstm_lm.data.corpus import load_corpus
from lstm_lm.evaluate.perplexity import evaluate_layout
from lstm_lm.model.language_model import LanguageModel
from lstm_lm.model.regularization import LockedDropout
from lstm_lm.model.stack import LayerStack
from lstm_lm.rundir.checkpoint import load_tensors
from lstm_lm.rundir.run_files import load_run, read_metrics
from lstm_lm.train.averaging import WeightAverage
from lstm_lm.train.progress import Reporter
from lstm_lm.train.step import OptimizationStep, standalone_step
from lstm_lm.train.trainer import Trainer
from tests.conftest import quiet_console, tiny_config, train_quietly, write_synthetic_corpus

CPU = torch.device("cpu")


def make_trainer(tmp_path, corpus, *overrides, run: str = "run") -> Trainer:
    config = tiny_config(corpus, tmp_path / "cache", *overrides)
    run_dir = tmp_path / run
    run_dir.mkdir(exist_ok=True)
    return Trainer(config, run_dir, load_corpus(config.data, config.tokenizer), CPU,
                   Reporter(run_dir / "metrics.jsonl", quiet_console()))



def make_step(tmp_path, corpus, *overrides) -> tuple[OptimizationStep, torch.Tensor, float]:
    """One optimization step of the tiny config, with no run around it; the batchified train split; the lr."""
    config = tiny_config(corpus, tmp_path / "cache", *overrides)
    loaded = load_corpus(config.data, config.tokenizer)
    step = standalone_step(config, loaded.tokenizer.vocab_size, CPU)
    return step, batchify(loaded.train, config.train.batch_size), config.train.lr


def clones(parameters) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in parameters]



def test_train_step_adds_ar_and_tar_to_the_objective(tmp_path, synthetic_corpus):
    common = ("train.optimizer=sgd", "train.lr=1", "train.clip=0", "model.num_layers=2",
              "model.hidden_sizes=[24, 16]")
    alpha, beta = 50.0, 20.0
    plain, data, lr = make_step(tmp_path, synthetic_corpus, *common)
    penalized, _, _ = make_step(tmp_path, synthetic_corpus, *common, f"train.ar_alpha={alpha}",
                                f"train.tar_beta={beta}")
    start = clones(penalized.parameters)
    assert all(torch.equal(a, b) for a, b in zip(clones(plain.parameters), start))  # the same seed, same weights
    # The objective by hand, on a copy of the initial model: the top layer's outputs from a separate pass.
    reference = LanguageModel(penalized.model.config, penalized.model.vocab_size)
    reference.load_state_dict(penalized.model.state_dict())
    inputs, targets = data[:10], data[1:11]
    hidden = reference.init_hidden(inputs.size(1))
    losses, _ = reference(inputs, hidden, targets)
    raw = reference.rnn(reference.embed(inputs), hidden)[0]
    objective = losses.mean() + alpha * raw.pow(2).mean() + beta * (raw[1:] - raw[:-1]).pow(2).mean()
    objective.backward()

    _, (plain_loss, _) = plain(inputs, targets, plain.model.init_hidden(inputs.size(1)), lr)
    _, (loss, grad_norm) = penalized(inputs, targets, penalized.model.init_hidden(inputs.size(1)), lr)
    assert loss.item() == pytest.approx(plain_loss.item(), rel=1e-6)  # the logged loss is the likelihood's alone
    expected = [parameter.grad for parameter in reference.parameters()]
    for got, want, before, after in zip((p.grad for p in penalized.parameters), expected, start,
                                        penalized.parameters):
        assert torch.allclose(got, want, atol=1e-6)
        assert torch.allclose(before - after.detach(), want, atol=1e-6)  # the step took that gradient (lr 1)
    assert grad_norm.item() == pytest.approx(torch.linalg.vector_norm(torch.stack(
        [g.norm() for g in expected])).item(), rel=1e-5)
    difference = max((a.grad - b.grad).abs().max().item() for a, b in zip(penalized.parameters, plain.parameters))
    assert difference > 1e-3  # the penalty moved the weights



def test_nt_asgd_switches_at_the_first_validation_worse_than_the_best_before_the_last_nonmono(
        tmp_path, synthetic_corpus):
    trainer = make_trainer(tmp_path, synthetic_corpus, "train.optimizer=nt_asgd", "train.nonmono=2")
    assert type(trainer.optimizer) is torch.optim.SGD
    # 10.0: worse, but too few validations to judge; 2.5 and 2.9: worse than 2.0, which is among the last two;
    # 3.1: worse than min(3, 10, 2) = 2, the best before the last two: the switch.
    losses = [3.0, 10.0, 2.0, 2.5, 2.9, 3.1, 1.0, 5.0]
    switch = 5
    for index, loss in enumerate(losses):
        trainer.state.step = 10 * (index + 1)
        trainer.consider_averaging(loss)
        assert (trainer.average is not None) == (index >= switch), index
        if index == switch:
            average = trainer.average
            assert average.count == 0 and trainer.state.averaging_since == 60
    assert trainer.average is average  # started once, never restarted
    assert trainer.state.valid_history == losses
    records = [r for r in read_metrics(trainer.run_dir / "metrics.jsonl") if r["event"] == "averaging"]
    assert [r["step"] for r in records] == [60]

    improving = make_trainer(tmp_path, synthetic_corpus, "train.optimizer=nt_asgd", "train.nonmono=2", run="b")
    for loss in (8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0):
        improving.consider_averaging(loss)
        assert improving.average is None
    improving.consider_averaging(3.0)  # worse than 1 and 2, but only as good as 3 before them: strictly worse only
    assert improving.average is None
    improving.consider_averaging(2.5)  # worse than 2.0, the best before the last two (1.0, 3.0)
    assert improving.average is not None
    sgd = make_trainer(tmp_path, synthetic_corpus, "train.optimizer=sgd", "train.nonmono=2", run="c")
    for loss in losses:
        sgd.consider_averaging(loss)
    assert sgd.average is None  # only nt_asgd averages



def test_weight_average_is_the_mean_of_the_weights_after_each_step():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step():
        optimizer.zero_grad()
        model(torch.randn(5, 4)).pow(2).sum().backward()
        optimizer.step()

    step()
    average = WeightAverage(list(model.parameters()))
    assert average.count == 0 and all(torch.equal(a, p) for a, p in zip(average.average, model.parameters()))
    after_steps = []
    for k in range(1, 6):
        step()
        average.update()
        after_steps.append(clones(model.parameters()))
        assert average.count == k
        for index, mean in enumerate(average.average):
            assert torch.allclose(mean, torch.stack([weights[index] for weights in after_steps]).mean(0),
                                  atol=1e-6)
    assert not torch.allclose(average.average[0], model.weight)  # the mean lags the iterates

    live = clones(model.parameters())
    with average.swapped_in():
        assert all(torch.equal(p, a) for p, a in zip(model.parameters(), average.average))
        assert torch.is_grad_enabled()  # the body keeps the caller's grad mode
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), live))
    with pytest.raises(RuntimeError, match="inside"):
        with average.swapped_in():
            raise RuntimeError("inside")
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), live))  # restored after an error too

    other = WeightAverage(list(nn.Linear(4, 3).parameters()))
    other.load_state_dict(average.state_dict())
    assert other.count == 5 and all(torch.equal(a, b) for a, b in zip(other.average, average.average))
    with pytest.raises(ValueError, match="1 averaged tensors for 2 parameters"):
        other.load_state_dict({"count": 1, "average": [torch.zeros(3)]})



def test_validation_uses_the_average_and_resume_keeps_it(tmp_path, synthetic_corpus):
    overrides = ("train.optimizer=nt_asgd", "train.nonmono=2", "train.lr=1")
    trainer = make_trainer(tmp_path, synthetic_corpus, *overrides)
    windows = list(bptt_windows(trainer.train_data, 10))
    for _, inputs, targets in windows[:3]:
        trainer.train_step(inputs, targets)
    trainer.state.step = 3
    trainer.save_checkpoint()
    assert make_trainer(tmp_path, synthetic_corpus, *overrides).restore_checkpoint()  # loads...
    assert load_tensors(trainer.run_dir / "checkpoint.pt")["average"] is None  # ...with nothing averaged yet

    trainer.state.valid_history = [1.0, 2.0, 3.0]
    trainer.consider_averaging(5.0)  # worse than 1.0: averaging begins
    assert trainer.average is not None
    for _, inputs, targets in windows[3:7]:
        trainer.train_step(inputs, targets)
    trainer.state.step = 7
    assert trainer.average.count == 4

    live = clones(trainer.parameters)
    result = trainer.validate()
    assert all(torch.equal(p, w) for p, w in zip(trainer.parameters, live))  # the trained weights are back
    averaged = LanguageModel(trainer.config.model, trainer.model.vocab_size)
    with torch.no_grad():
        for parameter, mean in zip(averaged.parameters(), trainer.average.average):
            parameter.copy_(mean)
    expected = evaluate_layout(averaged, *trainer.valid_layout, trainer.config.train.bptt, CPU)
    assert result.loss == pytest.approx(expected.loss, rel=1e-9)
    assert result.loss != pytest.approx(evaluate_layout(trainer.model, *trainer.valid_layout, 10, CPU).loss, rel=1e-4)
    record = [r for r in read_metrics(trainer.run_dir / "metrics.jsonl") if r["event"] == "valid"][-1]
    assert record["loss"] == pytest.approx(expected.loss, rel=1e-9) and record["best"]
    saved = load_tensors(trainer.run_dir / "model.pt")  # the first validation is the best so far: saved
    names = [name for name, _ in trainer.model.named_parameters()]
    for name, mean in zip(names, trainer.average.average):
        assert torch.equal(saved[name], mean), name
    assert not torch.equal(saved[names[0]], live[0])

    trainer.save_checkpoint()
    resumed = make_trainer(tmp_path, synthetic_corpus, *overrides)
    resumed.resume()
    assert resumed.average.count == trainer.average.count == 4
    assert all(torch.equal(a, b) for a, b in zip(resumed.average.average, trainer.average.average))
    assert all(torch.equal(p, w) for p, w in zip(resumed.parameters, live))  # the live weights, not the average
    assert resumed.state.valid_history == trainer.state.valid_history
    assert resumed.state.averaging_since == trainer.state.averaging_since == 3
    # The restored average follows the resumed model's weights: one more step on each gives the same mean.
    _, inputs, targets = windows[7]
    trainer.train_step(inputs, targets)
    resumed.train_step(inputs, targets)
    assert resumed.average.count == 5
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(resumed.average.average, trainer.average.average))
    assert not torch.allclose(resumed.average.average[0], averaged.embedding.weight)



def test_variable_bptt_scales_the_step_lr_by_window_length(tmp_path, synthetic_corpus):
    trainer = make_trainer(tmp_path, synthetic_corpus, "train.optimizer=sgd", "train.lr=0.5", "train.clip=0",
                           "train.variable_bptt=true")
    data = trainer.train_data
    for length in (7, 15, 10):
        before = clones(trainer.parameters)
        trainer.train_step(data[:length], data[1:length + 1])
        lr = 0.5 * length / 10
        assert [group["lr"] for group in trainer.optimizer.param_groups] == [pytest.approx(lr)]
        for parameter, old in zip(trainer.parameters, before):
            assert torch.allclose(old - parameter.detach(), lr * parameter.grad, atol=1e-7)
        assert trainer.state.lr == 0.5  # the schedule's lr is not changed by the scaling
    fixed = make_trainer(tmp_path, synthetic_corpus, "train.optimizer=sgd", "train.lr=0.5", run="fixed")
    fixed.train_step(data[:7], data[1:8])
    assert fixed.optimizer.param_groups[0]["lr"] == 0.5



ALL_ON = ("model.num_layers=2", "model.hidden_sizes=[48, 32]", "model.tie_weights=true", "model.init=default",
          "model.dropout_input=0.2", "model.dropout_hidden=0.2", "model.dropout_output=0.2",
          "model.dropout_embedding=0.1", "model.weight_drop=0.3",
          "train.optimizer=nt_asgd", "train.lr=2", "train.clip=0.25", "train.nonmono=2", "train.eval_every_steps=10",
          "train.variable_bptt=true", "train.ar_alpha=1", "train.tar_beta=1", "train.epochs=8")



@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One short run with every regularizer on (about 2 s): embedding size 32 = the last layer's, so tied."""
    root = tmp_path_factory.mktemp("all_on")
    corpus = write_synthetic_corpus(root / "corpus")
    info = train_quietly(tiny_config(corpus, root / "cache", *ALL_ON), root / "run")
    return root, corpus, info



def test_everything_on_still_learns(full_run):
    root, _, info = full_run
    run_dir = root / "run"
    run = load_run(run_dir, CPU)
    model = run.model
    assert isinstance(model.rnn, LayerStack) and model.rnn.sizes == [48, 32] and model.rnn.weight_drop == 0.3
    assert model.decoder.weight is model.embedding.weight and model.projection is None
    assert isinstance(model.input_dropout, LockedDropout) and isinstance(model.output_dropout, LockedDropout)
    records = read_metrics(run_dir / "metrics.jsonl")
    switched = [r["step"] for r in records if r["event"] == "averaging"]
    assert len(switched) == 1  # NT-ASGD switched once
    checkpoint = load_tensors(run_dir / "checkpoint.pt")
    assert checkpoint["trainer"]["averaging_since"] == switched[0]
    assert checkpoint["average"]["count"] == info["steps"] - switched[0]  # every step since, averaged
    assert any(r["event"] == "valid" and r["best"] and r["step"] > switched[0] for r in records)  # model.pt: averaged
    # The windows' lengths varied: the tokens between progress records (every 5 steps) differ within an epoch.
    train_records = [r for r in records if r["event"] == "train"]
    tokens = [b["tokens"] - a["tokens"] for a, b in zip(train_records, train_records[1:]) if a["epoch"] == b["epoch"]]
    assert len(set(tokens)) > 5  # fixed windows would give 5 × 10 × 8 = 400 each time
    # Chance is the vocabulary size (62); the floor is e^(log 10 / 7) = 1.39, only the key word being uncertain.
    # Six seeds ended between 1.43 and 1.46.
    vocab = info["vocab_size"]
    assert info["results"]["valid"]["ppl"] < 3.0 < vocab / 20
    assert info["results"]["test"]["ppl"] < 3.0
    assert info["results"]["valid"]["ppl"] == pytest.approx(info["best_valid_ppl"], rel=1e-9)  # model.pt: the best



def test_evaluate_command_reproduces_the_reported_perplexity(full_run):
    root, _, info = full_run
    result = CliRunner().invoke(app, ["evaluate", str(root / "run"), "--split", "valid", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["tokens"] == info["results"]["valid"]["tokens"]
    assert report["ppl"] == pytest.approx(info["results"]["valid"]["ppl"], rel=1e-9)



def test_resume_with_everything_on_repeats_the_straight_run(full_run):
    root, corpus, info = full_run
    straight = load_tensors(root / "run/checkpoint.pt")
    since = straight["trainer"]["averaging_since"]
    stop = (since // 10 + 5) * 10  # a validation step (no extra validation at the stop), averaging under way
    assert stop < info["steps"]
    resumed = root / "resumed"
    first = train_quietly(tiny_config(corpus, root / "cache", *ALL_ON, f"train.max_steps={stop}"), resumed)
    assert first["steps"] == stop
    assert load_tensors(resumed / "checkpoint.pt")["average"]["count"] == stop - since
    train_quietly(load_config(resumed / "config.yaml", ["train.max_steps=null"]), resumed, resume=True)
    again = load_tensors(resumed / "checkpoint.pt")
    assert again["trainer"]["step"] == straight["trainer"]["step"]  # the same window lengths: the same steps
    assert again["trainer"]["averaging_since"] == since
    assert again["trainer"]["valid_history"] == straight["trainer"]["valid_history"]
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, again["model"][name]), name
    assert again["average"]["count"] == straight["average"]["count"]
    assert all(torch.equal(a, b) for a, b in zip(straight["average"]["average"], again["average"]["average"]))
    best, best_again = load_tensors(root / "run/model.pt"), load_tensors(resumed / "model.pt")
    assert all(torch.equal(best[name], best_again[name]) for name in best)



def test_a_stop_between_validations_does_not_move_the_nt_asgd_switch(full_run):
    """A run stopped by a limit between validations validates once more before it saves; that extra validation
    must not feed NT-ASGD's trigger, or the resumed run would start averaging at another step than the straight
    run (same live weights, another average)."""
    root, corpus, info = full_run
    straight = load_tensors(root / "run/checkpoint.pt")
    since = straight["trainer"]["averaging_since"]
    stop = since - 5  # between the validation before the switch and the one that switched
    resumed = root / "stopped_between"
    train_quietly(tiny_config(corpus, root / "cache", *ALL_ON, f"train.max_steps={stop}"), resumed)
    train_quietly(load_config(resumed / "config.yaml", ["train.max_steps=null"]), resumed, resume=True)
    again = load_tensors(resumed / "checkpoint.pt")
    assert all(torch.equal(tensor, again["model"][name]) for name, tensor in straight["model"].items())
    assert again["trainer"]["averaging_since"] == since
    assert again["trainer"]["valid_history"] == straight["trainer"]["valid_history"]
