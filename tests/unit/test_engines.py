"""The engine factories on tiny data: what a run of each engine changes and what it leaves in its state."""

import pytest
import torch
from ignite.engine import Events
from sklearn.metrics import average_precision_score, roc_auc_score

from toolkit.data import TensorBatches
from toolkit.engines import (
    SVDDEvents,
    create_evaluator,
    create_pretrainer,
    create_svdd_trainer,
    reconstruction_error,
    step_seed,
)
from toolkit.nets import build_autoencoder, build_encoder, embed
from toolkit.spheres import SphereUpdate
from toolkit.svdd import SphereHead, init_centres, own_sq_distances, soft_boundary_loss


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # tiny nets: with more threads their synchronisation dominates on a busy machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def params(net):
    return [p.detach().clone() for p in net.parameters()]


def same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


def test_reconstruction_error_is_the_per_sample_sum_of_squares():
    x = torch.randn(32, 1, 28, 28)
    ae = build_autoencoder("lenet28", (1, 28, 28)).eval()
    with torch.no_grad():
        assert torch.allclose(reconstruction_error(ae, x), ((ae(x) - x) ** 2).sum(dim=(1, 2, 3)))


def test_pretrainer_lowers_the_loss_and_keeps_it_in_output_and_metrics():
    ae = build_autoencoder("mlp", (8,))
    engine = create_pretrainer(ae, torch.optim.Adam(ae.parameters(), lr=1e-2))
    steps, epochs = [], []
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: steps.append(e.state.output["loss"]))
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: epochs.append(e.state.metrics["loss"]))
    engine.run(TensorBatches(torch.randn(64, 8), batch_size=16, shuffle=True), max_epochs=5)
    assert len(steps) == 20 and not any(s.requires_grad for s in steps)
    assert epochs[0] == pytest.approx(float(torch.stack(steps[:4]).mean()), rel=1e-5)
    assert epochs[-1] < epochs[0]


def test_pretrainer_repeats_and_seeds_the_losss_generator_per_step():
    x, draws = torch.randn(32, 8), []

    def loss(net, xb, generator):
        draws.append(torch.rand(3, generator=generator))
        return reconstruction_error(net, xb).mean()

    def run(rank=0):
        torch.manual_seed(0)
        ae = build_autoencoder("mlp", (8,))
        engine = create_pretrainer(ae, torch.optim.Adam(ae.parameters(), lr=1e-2), loss, seed=3, rank=rank)
        engine.run(TensorBatches(x, batch_size=16, shuffle=True), max_epochs=2)
        return params(ae)

    assert same(run(), run())
    for it, draw in enumerate(draws[:4], start=1):  # 2 steps x 2 epochs
        assert torch.equal(draw, torch.rand(3, generator=torch.Generator().manual_seed(step_seed(3, 0, it))))
    assert torch.equal(draws[0], draws[4])
    run(rank=1)
    assert not torch.equal(draws[8], draws[0])  # another process draws another stream


def svdd(objective="one-class", lr=1e-2, n=64, **kw):
    x, labels = torch.randn(n, 8), torch.arange(n) % 2
    encoder = build_encoder("mlp", (8,))
    head = SphereHead(init_centres(embed(encoder, x), labels, 2))
    opt = torch.optim.Adam(encoder.parameters(), lr=lr) if lr else torch.optim.SGD(encoder.parameters(), lr=0.0)
    engine = create_svdd_trainer(encoder, head, opt, objective, 0.2, n, **kw)
    return engine, x, labels, encoder, head


def test_svdd_trainer_records_every_points_distance_at_its_index():
    # lr=0: the net stays as it is, so one full shuffled batch gives the training-mode distances of x
    engine, x, labels, encoder, head = svdd(lr=0)
    engine.run(TensorBatches(x, labels, batch_size=64, shuffle=True), max_epochs=1)
    with torch.no_grad():
        expected = own_sq_distances(encoder.train()(x), head.centres, labels)
    assert torch.allclose(engine.state.epoch_dist, expected, rtol=1e-4, atol=1e-6)
    assert not hasattr(engine.state, "epoch_z")


@pytest.mark.parametrize("objective", ["soft-boundary", "one-class"])
def test_svdd_trainer_step_loss_is_the_objective_of_the_batch(objective):
    engine, x, labels, _, head = svdd(objective)
    head.radii.fill_(0.5)
    ok = []

    @engine.on(Events.ITERATION_COMPLETED)
    def _check(e):
        out, lab = e.state.output, e.state.batch[2]
        want = soft_boundary_loss(out["dist"], lab, head.radii, 0.2) if objective == "soft-boundary" else None
        ok.append(torch.allclose(out["loss"], out["dist"].mean() if want is None else want))

    engine.run(TensorBatches(x, labels, batch_size=16, shuffle=True), max_epochs=1)
    assert ok == [True] * 4


def test_svdd_trainer_pulls_the_encoder_to_the_fixed_centres_the_same_way_each_run():
    def run():
        torch.manual_seed(1)
        engine, x, labels, encoder, head = svdd()
        centres, losses = head.centres.clone(), []
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: losses.append(e.state.metrics["loss"]))
        engine.run(TensorBatches(x, labels, batch_size=16, shuffle=True, seed=5), max_epochs=4)
        assert losses[-1] < losses[0] and torch.equal(head.centres, centres)
        return params(encoder), engine.state.epoch_dist

    (a, da), (b, db) = run(), run()
    assert same(a, b) and torch.equal(da, db)


def test_svdd_trainer_keeps_embeddings_when_asked():
    engine, x, labels, _, head = svdd(keep_embeddings=True)
    engine.run(TensorBatches(x, labels, batch_size=16, shuffle=True), max_epochs=1)
    z = engine.state.epoch_z
    assert z.shape == (64, 16)
    assert torch.allclose(own_sq_distances(z, head.centres, labels), engine.state.epoch_dist, rtol=1e-5)


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_svdd_trainer_trains_the_decoder_only_with_a_reconstruction_weight(weight):
    x, labels = torch.randn(64, 8), torch.arange(64) % 2
    ae = build_autoencoder("mlp", (8,))
    head, before = SphereHead(init_centres(embed(ae.encoder, x), labels, 2)), params(ae.decoder)
    opt = torch.optim.Adam(ae.parameters(), lr=1e-2)
    engine = create_svdd_trainer(ae.encoder, head, opt, "one-class", 0.1, 64, decoder=ae.decoder, recon_weight=weight)
    engine.run(TensorBatches(x, labels, batch_size=32), max_epochs=1)
    assert same(before, params(ae.decoder)) == (weight == 0)


def test_svdd_trainer_has_radii_updated_which_the_sphere_update_fires_after_warm_up():
    engine, x, labels, _, head = svdd("soft-boundary")
    SphereUpdate(head, labels, 0.2, warmup_epochs=2).attach(engine)
    fired = []
    engine.add_event_handler(SVDDEvents.RADII_UPDATED, lambda e: fired.append((e.state.epoch, head.radii.clone())))
    engine.run(TensorBatches(x, labels, batch_size=16, shuffle=True), max_epochs=3)
    assert [e for e, _ in fired] == [2, 3] and bool((fired[-1][1] > 0).all())


def test_evaluator_metrics_match_sklearn_and_start_afresh_each_run():
    x, y = torch.randn(60, 4), (torch.arange(60) % 3 == 0).long()
    x[y == 1] += 0.7
    batches = [(torch.arange(s, s + 20), x[s : s + 20], y[s : s + 20]) for s in range(0, 60, 20)]
    grads = []
    evaluator = create_evaluator(lambda xb: grads.append(torch.is_grad_enabled()) or xb.sum(dim=1))
    s = x.sum(dim=1).numpy()
    for _ in range(2):
        evaluator.run(batches)
        assert evaluator.state.metrics["auroc"] == pytest.approx(roc_auc_score(y.numpy(), s))
        assert evaluator.state.metrics["aupr"] == pytest.approx(average_precision_score(y.numpy(), s))
        assert evaluator.state.outputs == []
    assert grads == [False] * 6
