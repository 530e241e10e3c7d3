"""The run's handlers, each attached to a small Ignite engine over a list of numbers."""

import logging
import signal

import pytest
import torch
from ignite.engine import Engine, Events
from ignite.metrics import Average

from toolkit import handlers
from toolkit.engines import create_evaluator
from toolkit.files import load_checked
from toolkit.handlers import (
    History,
    StopRequest,
    TrainingDiverged,
    attach_checkpoint,
    attach_early_stopping,
    attach_evaluation,
    attach_lr_schedule,
    attach_nan_stop,
    attach_progress,
    attach_sphere_logs,
)
from toolkit.svdd import SphereHead


def optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def engine(opt=None):
    """Steps output their batch (after an optimiser step, as a schedule expects); ``metrics['loss']`` is the
    epoch's mean, as in the real engines."""
    e = Engine(lambda e, b: (opt.step() if opt else None) or float(b))
    Average().attach(e, "loss")
    return e


def test_history_records_loss_and_the_lr_before_the_schedule_steps_and_round_trips():
    opt = optimizer()
    trainer = engine(opt)
    history = History(opt).attach(trainer)
    attach_lr_schedule(trainer, torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    trainer.run([1.0, 3.0], max_epochs=3)
    assert history.epochs == [{"epoch": e, "loss": 2.0, "lr": lr} for e, lr in ((1, 1.0), (2, 0.5), (3, 0.25))]
    history.tests.append({"epoch": 3, "auroc": 0.75, "aupr": 0.5})
    other = History(optimizer())
    other.load_state_dict(history.state_dict())
    assert other.as_dict() == history.as_dict() == {"epochs": history.epochs, "tests": history.tests}


def sphere_engine(dist):
    trainer = engine()
    trainer.add_event_handler(Events.STARTED, lambda e: setattr(e.state, "epoch_dist", dist))
    return trainer


def test_history_records_spheres_and_refreshes_radii_changed_at_completed():
    head = SphereHead(torch.zeros(2, 3), torch.tensor([1.0, 1.0]))
    trainer = sphere_engine(torch.tensor([0.5, 2.0, 0.1, 0.2]))
    history = History(optimizer(), head, torch.tensor([0, 0, 1, 1])).attach(trainer)
    trainer.run([1.0], max_epochs=1)
    assert history.epochs[0]["radii"] == [1.0, 1.0] and history.epochs[0]["outside"] == [0.5, 0.0]
    assert not history.refreshed
    head.radii.fill_(2.0)  # as a run shorter than the warm-up does at COMPLETED, before History.completed
    history.completed(trainer)
    assert history.refreshed and history.epochs[-1]["radii"] == [2.0, 2.0] and history.epochs[-1]["outside"] == [0, 0]


def test_many_spheres_are_recorded_by_their_spread(monkeypatch):
    """Beyond SPHERES_ONE_BY_ONE spheres, an epoch's row holds the radii's quantiles and the share of all
    points outside, not one entry per sphere, so checkpoints and results.json stay small."""
    monkeypatch.setattr(handlers, "SPHERES_ONE_BY_ONE", 1)
    head = SphereHead(torch.zeros(2, 3), torch.tensor([1.0, 3.0]))
    trainer = sphere_engine(torch.tensor([0.5, 2.0, 0.1, 0.2]))  # cluster 0: 1 of 2 outside, cluster 1: 0 of 2
    history = History(optimizer(), head, torch.tensor([0, 0, 1, 1])).attach(trainer)
    trainer.run([1.0], max_epochs=1)
    row = history.epochs[0]
    assert "radii" not in row and row["outside_all"] == 0.25
    assert row["radius_quantiles"] == [1.0, 1.5, 2.0, 2.5, 3.0]
    head.radii.fill_(2.0)
    history.completed(trainer)
    assert history.refreshed and history.epochs[-1]["radius_quantiles"] == [2.0] * 5


def test_many_spheres_are_logged_by_their_spread(monkeypatch):
    monkeypatch.setattr(handlers, "SPHERES_ONE_BY_ONE", 1)
    head, writer = SphereHead(torch.zeros(2, 2), torch.tensor([1.0, 2.0])), Writer()
    trainer = sphere_engine(torch.tensor([4.0, 9.0, 0.25, 0.0, 16.0]))
    history = History(optimizer(), head, torch.tensor([1, 0, 1, 0, 1])).attach(trainer)
    attach_sphere_logs(writer, trainer, "svdd", history)
    trainer.run([1.0], max_epochs=1)
    assert writer.calls == [
        ("svdd/radius/min", 1.0, 1),
        ("svdd/radius/q25", 1.25, 1),
        ("svdd/radius/median", 1.5, 1),
        ("svdd/radius/q75", 1.75, 1),
        ("svdd/radius/max", 2.0, 1),
        ("svdd/outside/all", pytest.approx(2 / 5), 1),
        ("svdd/radii", [1.0, 2.0], 1),
        ("svdd/distance", [0.0, 0.5, 2.0, 3.0, 4.0], 1),
    ]


def test_nan_stop_raises_naming_the_stage_epoch_and_last_good_checkpoint():
    trainer = Engine(lambda e, b: {"loss": torch.tensor(float("nan") if e.state.iteration == 4 else 1.0)})
    attach_nan_stop(trainer, "svdd_multi", "run/ckpt")
    with pytest.raises(TrainingDiverged, match=r"svdd_multi: the loss of epoch 2 is nan .*epoch 1 \(run/ckpt\)"):
        trainer.run([0, 0], max_epochs=3)


def early_stopping_run(losses, models, patience, after):
    trainer = Engine(lambda e, b: None)

    @trainer.on(Events.EPOCH_COMPLETED)
    def _epoch(e):  # each weight tells the epoch; the metric is the epoch's held-out loss
        for net in models.values():
            net.weight.data.fill_(float(e.state.epoch))
        e.state.metrics["holdout_loss"] = losses[e.state.epoch - 1]

    kept = attach_early_stopping(trainer, models, "holdout_loss", patience=patience, after=after)
    trainer.run([0], max_epochs=len(losses))
    return trainer, kept


def test_early_stopping_watches_from_after_stops_after_patience_and_restores_the_best():
    models = {"encoder": torch.nn.Linear(1, 1, bias=False), "head": torch.nn.Linear(1, 1, bias=False)}
    trainer, kept = early_stopping_run([0.1, 5.0, 3.0, 4.0, 4.0, 1.0], models, patience=2, after=2)
    assert trainer.state.epoch == 5  # epoch 1 is not watched; 4 and 5 did not beat 3
    assert models["encoder"].weight.item() == models["head"].weight.item() == 3.0
    assert set(kept) == {"early_stopping", "best_checkpoint", "best_state"}


def test_early_stopping_with_a_single_model():
    net = torch.nn.Linear(1, 1, bias=False)
    early_stopping_run([2.0, 1.0, 3.0], {"net": net}, patience=5, after=1)
    assert net.weight.item() == 2.0


@pytest.mark.parametrize(("mode", "lines"), [("lines", 3), ("auto", 3), ("none", 0), ("bar", 0)])
def test_progress_logs_one_line_per_epoch_in_lines_mode(mode, lines, caplog):
    trainer = engine()
    attach_progress(trainer, "pretrain", mode)  # auto: pytest's stderr is not a terminal, so lines
    with caplog.at_level(logging.INFO, logger="toolkit"):
        trainer.run([1.0, 2.0], max_epochs=3)
    got = [r.getMessage() for r in caplog.records if r.name == "toolkit"]
    assert got == [f"pretrain: epoch {e}/3, loss 1.5" for e in (1, 2, 3)][:lines]


def test_checkpoint_saves_every_epoch_but_the_last_keeping_two(tmp_path):
    net = torch.nn.Linear(2, 1)
    trainer = Engine(lambda e, b: net.weight.data.add_(1.0))
    ckpt = attach_checkpoint(trainer, {"net": net, "trainer": trainer}, tmp_path, "svdd_multi")
    trainer.run([0], max_epochs=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svdd_multi_checkpoint_2.pt", "svdd_multi_checkpoint_3.pt"]
    saved = load_checked(tmp_path / ckpt.last_checkpoint)
    assert saved["trainer"]["iteration"] == 3 and torch.equal(saved["net"]["weight"], net.weight.detach() - 1.0)


def test_stop_request_stops_after_the_epoch_then_interrupts_and_restores_sigint(capsys):
    previous, completed = signal.getsignal(signal.SIGINT), []
    trainer = engine()
    trainer.add_event_handler(Events.COMPLETED, lambda e: completed.append(True))
    with StopRequest() as stop:
        stop.attach(trainer)
        trainer.add_event_handler(Events.ITERATION_COMPLETED(once=3), lambda e: signal.raise_signal(signal.SIGINT))
        trainer.run([1.0, 2.0], max_epochs=5)
        assert stop.requested and trainer.state.iteration == 4 and completed == []  # stopped, not finished
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # a second Ctrl-C interrupts at once
    assert signal.getsignal(signal.SIGINT) is previous
    assert "stopping after this epoch's checkpoint" in capsys.readouterr().err
    stop.requested = False
    trainer.add_event_handler(Events.EPOCH_STARTED(once=5), lambda e: setattr(stop, "requested", True))
    trainer.run([1.0, 2.0], max_epochs=5)  # resumes; asked in the last epoch, the stage finishes
    assert trainer.state.epoch == 5 and completed == [True]


@pytest.mark.parametrize(("every", "epochs"), [(2, [2, 4, 5]), (0, [5]), (1, [1, 2, 3, 4, 5])])
def test_evaluation_runs_every_n_epochs_and_once_at_the_end(every, epochs):
    x, y = torch.arange(8.0)[:, None], torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    trainer, history = engine(), History(optimizer())
    attach_evaluation(trainer, create_evaluator(lambda xb: xb[:, 0]), [(torch.arange(8), x, y)], every, history)
    trainer.run([1.0], max_epochs=5)
    assert history.tests == [{"epoch": e, "auroc": 1.0, "aupr": 1.0} for e in epochs]


class Writer:
    def __init__(self):
        self.calls, self.flushes = [], 0

    def add_scalar(self, tag, value, step):
        self.calls.append((tag, value, step))

    def add_histogram(self, tag, values, step):
        self.calls.append((tag, sorted(values.tolist()), step))

    def flush(self):
        self.flushes += 1


def test_sphere_logs_write_each_clusters_radius_share_outside_and_distances():
    head, writer = SphereHead(torch.zeros(2, 2), torch.tensor([1.0, 2.0])), Writer()
    trainer = sphere_engine(torch.tensor([4.0, 9.0, 0.25, 0.0, 16.0]))
    history = History(optimizer(), head, torch.tensor([1, 0, 1, 0, 1])).attach(trainer)
    attach_sphere_logs(writer, trainer, "svdd", history)
    trainer.run([1.0], max_epochs=2)
    assert writer.calls[:6] == [
        ("svdd/radius/0", 1.0, 1),
        ("svdd/outside/0", 0.5, 1),
        ("svdd/distance/0", [0.0, 3.0], 1),
        ("svdd/radius/1", 2.0, 1),
        ("svdd/outside/1", pytest.approx(1 / 3), 1),
        ("svdd/distance/1", [0.5, 2.0, 4.0], 1),
    ]
    assert len(writer.calls) == 12 and writer.flushes == 3  # two epochs, and the end


def test_the_collapse_check_warns_on_zero_distances_but_not_for_a_stage_that_trained_no_epoch(recwarn):
    from toolkit.spheres import attach_collapse_check

    head = SphereHead(torch.ones(2, 3))  # radii 0
    for epochs, warned in ((0, False), (2, True)):
        e = Engine(lambda e, b: None)
        e.state.epoch_dist = torch.zeros(4)  # every point on its centre
        attach_collapse_check(e, head, "svdd_multi")
        recwarn.clear()
        e.run([0, 1], max_epochs=epochs)
        assert any("svdd_multi: the solution looks collapsed" in str(w.message) for w in recwarn) is warned
