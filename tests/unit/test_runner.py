"""The stage runner with its harness: which stages run, in what order, what they tell the harness's events,
and that stages found in the store are taken up instead of trained."""

import logging

import pytest
import torch
from ignite.engine import Engine

from toolkit.config import Config
from toolkit.handlers import History
from toolkit.nets import resolve_arch
from toolkit.overrides import apply_overrides
from toolkit.pretext import check_pretraining
from toolkit.runner import record, run_stages
from toolkit.stages import FitEvents, Harness, StageStore

IN_SHAPE = (8,)
SETTINGS = {
    "pretrain.epochs": 2,
    "pretrain.batch_size": 50,
    "pretrain.lr": 1e-3,
    "svdd.epochs": 2,
    "svdd.batch_size": 50,
    "svdd.warmup_epochs": 1,
    "svdd.nu": 0.1,
    "clustering.name": "kmeans",
    "clustering.options": {"n_clusters": 2},
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def x():
    """Two blobs of 100 standardised rows."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=g)
    x[100:] += 3.0
    return (x - x.mean(0)) / x.std(0)


class Recording(StageStore):
    """Keeps every finished stage, in order."""

    def __init__(self):
        self.stages, self.records = [], {}

    def record(self, stage, payload):
        self.stages.append(stage)
        self.records[stage] = payload


class Replaying(StageStore):
    """Gives back the records of an earlier fit: every stage has finished."""

    def __init__(self, records):
        self.records, self.asked = records, []

    def finished(self, stage):
        self.asked.append(stage)
        return self.records.get(stage)

    def record(self, stage, payload):
        raise AssertionError(f"{stage} was recorded again")


def fit(x, harness, **settings):
    """As ``MultiRadiusDeepSVDD.fit`` runs the stages, on data already preprocessed."""
    torch.manual_seed(0)
    m, info = apply_overrides(Config(), SETTINGS | settings).model, {}
    arch = resolve_arch(m.net.arch, IN_SHAPE)
    pretrained, trained = run_stages(m, check_pretraining(m), x, arch, IN_SHAPE, 1, harness, info)
    return pretrained, trained, info


def same(a, b):
    """``a`` and ``b`` (modules or state dicts) hold equal tensors."""
    a, b = (s.state_dict() if isinstance(s, torch.nn.Module) else s for s in (a, b))
    return a.keys() == b.keys() and all(torch.equal(v, b[k]) for k, v in a.items())


def test_stages_are_recorded_in_order(x):
    store = Recording()
    pretrained, trained, info = fit(x, Harness(store=store))
    assert store.stages == ["pretrain", "clustering", "svdd_multi"]
    assert set(trained) == {"multi"} and set(info) == {"pretrain", "clustering", "multi"}
    encoder, head, labels = trained["multi"]
    assert head.num_clusters == 2 and labels.shape == (200,) and bool((head.radii > 0).all())  # warm-up: 1 epoch
    assert info["multi"]["radii"] == head.radii.tolist() and len(info["pretrain"]["history"]["epochs"]) == 2
    rec = store.records
    assert torch.equal(rec["clustering"]["labels"], labels) and isinstance(rec["svdd_multi"]["info"], str)
    assert same(rec["pretrain"]["autoencoder"], pretrained) and same(rec["svdd_multi"]["encoder"], encoder)


def test_baseline_trains_one_sphere_first(x):
    store = Recording()
    _, trained, _ = fit(x, Harness(store=store, baseline=True))
    assert store.stages == ["pretrain", "clustering", "svdd_single", "svdd_multi"]
    _, head, labels = trained["single"]
    assert head.num_clusters == 1 and int(labels.max()) == 0 and trained["multi"][1].num_clusters == 2


def test_the_one_sphere_trains_at_its_own_learning_rate_when_one_is_set(x):
    lrs = lambda info, name: {e["lr"] for e in info[name]["history"]["epochs"]}  # noqa: E731
    _, _, shared = fit(x, Harness(baseline=True), **{"svdd.lr": 1e-5})
    assert lrs(shared, "single") == lrs(shared, "multi") == {1e-5}
    _, _, own = fit(x, Harness(baseline=True), **{"svdd.lr": 1e-5, "svdd.single_lr": 1e-3})
    assert lrs(own, "single") == {1e-3} and lrs(own, "multi") == {1e-5}
    assert own["multi"]["radii"] == shared["multi"]["radii"]  # the multi-sphere model is unchanged by it


def test_stages_found_in_the_store_are_taken_up_not_trained(x):
    first = Recording()
    pretrained, trained, info = fit(x, Harness(store=first, baseline=True))
    store = Replaying(first.records)
    harness, started, clustered = Harness(store=store, baseline=True), [], []
    harness.events.add_event_handler(FitEvents.STAGE_STARTED, lambda e: started.append(e.state.stage))
    harness.events.add_event_handler(FitEvents.CLUSTERED, lambda e: clustered.append(e.state.labels.clone()))
    again, taken, info2 = fit(x, harness)
    assert started == [] and store.asked == ["pretrain", "clustering", "svdd_single", "svdd_multi"]
    assert same(again, pretrained) and info2 == info
    for name in ("single", "multi"):
        (enc, head, lab), (enc2, head2, lab2) = trained[name], taken[name]
        assert same(enc, enc2) and same(head, head2) and torch.equal(lab, lab2)
    assert len(clustered) == 1 and torch.equal(clustered[0], trained["multi"][2])  # told, though not clustered


def test_fit_events_show_each_stage_its_trainer_and_the_labels(x):
    harness, seen = Harness(), []

    def started(e):
        s = e.state
        assert isinstance(s.trainer, Engine) and isinstance(s.history, History) and callable(s.score_fn)
        assert {"optimizer", "scheduler", "trainer", "history", "batches"} <= set(s.to_save)
        seen.append(("started", s.stage, s.trainer.state.epoch))

    def clustered(e):
        assert e.state.clustering["sizes"] == torch.bincount(e.state.labels).tolist()
        seen.append(("clustered", len(e.state.labels)))

    harness.events.add_event_handler(FitEvents.STAGE_STARTED, started)
    harness.events.add_event_handler(
        FitEvents.STAGE_COMPLETED, lambda e: seen.append(("completed", e.state.stage, e.state.trainer.state.epoch))
    )
    harness.events.add_event_handler(FitEvents.CLUSTERED, clustered)
    fit(x, harness)
    assert seen == [
        ("started", "pretrain", 0),
        ("completed", "pretrain", 2),
        ("clustered", 200),
        ("started", "svdd_multi", 0),
        ("completed", "svdd_multi", 2),
    ]


def test_fits_repeat_for_a_fixed_seed(x):
    (a, ta, ia), (b, tb, ib) = fit(x, Harness()), fit(x, Harness())
    assert same(a, b) and same(ta["multi"][0], tb["multi"][0]) and same(ta["multi"][1], tb["multi"][1])
    assert ia["multi"]["history"] == ib["multi"]["history"]


def test_harness_progress_lines_log_every_epoch_of_every_stage(x, caplog):
    with caplog.at_level(logging.INFO, logger="toolkit"):
        fit(x, Harness(progress="lines"))
    lines = [r.getMessage().split(", loss")[0] for r in caplog.records if ": epoch" in r.getMessage()]
    assert lines == [f"{stage}: epoch {e}/2" for stage in ("pretrain", "svdd_multi") for e in (1, 2)]


def test_default_store_keeps_nothing_and_record_hands_the_payload_to_the_store():
    plain, store = StageStore(), Recording()
    assert plain.finished("pretrain") is None and "no checkpoints" in plain.where("svdd_multi")
    record(Harness(store=store), "clustering", {"labels": torch.zeros(3)})
    assert store.stages == ["clustering"] and torch.equal(store.records["clustering"]["labels"], torch.zeros(3))
