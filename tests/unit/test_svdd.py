"""The method's math against slow, obvious references written here, one cluster at a time."""

import numpy as np
import pytest
import torch

from toolkit.svdd import (
    OUTSIDE,
    SphereHead,
    all_sq_distances,
    cluster_means,
    cluster_quantiles,
    init_centres,
    nearest_sphere,
    one_class_loss,
    own_sq_distances,
    scores,
    soft_boundary_loss,
    sphere_scores,
    update_radii,
)


def ref_loss(dist, labels, radii, nu):
    k = len(radii)
    total = 0.0
    for c in range(k):
        d = dist[labels == c]
        if len(d) == 0:
            continue  # an absent cluster adds nothing
        total += radii[c] ** 2 + (1 / nu) * np.mean(np.maximum(0.0, d - radii[c] ** 2))
    return total / k


@pytest.mark.parametrize("k", [1, 2, 5, 9])
@pytest.mark.parametrize("nu", [0.05, 0.1, 0.5, 1.0])
def test_soft_boundary_loss_matches_reference(k, nu):
    g = torch.Generator().manual_seed(k)
    n = 64
    dist = torch.rand(n, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, k, (n,), generator=g)
    radii = torch.rand(k, generator=g, dtype=torch.float64) * 1.5
    got = soft_boundary_loss(dist, labels, radii, nu).item()
    assert got == pytest.approx(ref_loss(dist.numpy(), labels.numpy(), radii.numpy(), nu), rel=1e-12)


def test_soft_boundary_loss_with_clusters_missing_from_batch():
    dist = torch.tensor([0.5, 2.0, 0.1, 4.0], dtype=torch.float64)
    labels = torch.tensor([0, 0, 3, 3])  # clusters 1, 2 and 4 are absent
    radii = torch.tensor([1.0, 0.7, 0.2, 0.5, 2.0], dtype=torch.float64)
    got = soft_boundary_loss(dist, labels, radii, 0.1)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(ref_loss(dist.numpy(), labels.numpy(), radii.numpy(), 0.1))


def test_soft_boundary_loss_gradient_flows_only_through_distances():
    z = torch.randn(10, 3, requires_grad=True)
    c = torch.randn(2, 3)
    labels = torch.tensor([0, 1] * 5)
    loss = soft_boundary_loss(own_sq_distances(z, c, labels), labels, torch.zeros(2), 0.1)
    loss.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_one_class_loss_is_mean_distance():
    d = torch.tensor([1.0, 2.0, 6.0])
    assert one_class_loss(d).item() == pytest.approx(3.0)


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("q", [0.0, 0.3, 0.9, 1.0])
def test_cluster_quantiles_match_torch_quantile(k, q):
    g = torch.Generator().manual_seed(10 * k)
    n = 200
    values = torch.rand(n, generator=g, dtype=torch.float64)
    labels = torch.randint(0, k, (n,), generator=g)
    got = cluster_quantiles(values, labels, k + 1, q)  # cluster k is empty
    for c in range(k):
        sel = values[labels == c]
        if len(sel):
            assert got[c].item() == pytest.approx(torch.quantile(sel, q).item(), rel=1e-12)
    assert torch.isnan(got[k])


def test_update_radii_is_quantile_of_sqrt_distances_per_cluster_and_keeps_empty():
    g = torch.Generator().manual_seed(3)
    dist = torch.rand(300, generator=g, dtype=torch.float64) * 4
    labels = torch.randint(0, 3, (300,), generator=g)  # cluster 3 has no points
    old = torch.tensor([9.0, 9.0, 9.0, 0.42], dtype=torch.float64)
    nu = 0.1
    new = update_radii(dist, labels, old, nu)
    for c in range(3):
        expected = np.quantile(np.sqrt(dist[labels == c].numpy()), 1 - nu)
        assert new[c].item() == pytest.approx(expected, rel=1e-12)
    assert new[3].item() == 0.42
    # with these radii, at most nu of each cluster's points (up to one point) lie outside its sphere
    outside = (dist > new[labels] ** 2).double()
    for c in range(3):
        n_c = int((labels == c).sum())
        assert outside[labels == c].mean().item() <= nu + 1.0 / n_c


def test_init_centres_are_means_with_small_coordinates_pushed_to_eps():
    z = torch.tensor([[0.0, 1.0], [0.02, 3.0], [-0.5, -0.01], [-0.7, -0.03]])
    labels = torch.tensor([0, 0, 1, 1])
    c = init_centres(z, labels, 2, eps=0.1)
    assert torch.allclose(c, torch.tensor([[0.1, 2.0], [-0.6, -0.1]]))


def test_init_centres_keep_the_means_of_unit_length_rows():
    # a normalised embedding cannot be made zero, and its coordinates are mostly under eps: no push
    z = torch.nn.functional.normalize(torch.randn(40, 128, generator=torch.Generator().manual_seed(0)), dim=1)
    labels = torch.arange(40) % 4
    c = init_centres(z, labels, 4, eps=0.1)
    assert torch.allclose(c, cluster_means(z, labels, 4))
    assert (c.abs() < 0.1).float().mean() > 0.5  # the push would have moved most coordinates
    assert not torch.allclose(init_centres(2 * z, labels, 4, eps=0.1), 2 * c)  # raw rows are pushed


def test_init_centres_refuses_empty_cluster():
    with pytest.raises(ValueError, match="no points"):
        init_centres(torch.randn(4, 2), torch.tensor([0, 0, 2, 2]), 3)


@pytest.mark.parametrize("k", [1, 4])
def test_scores_match_reference(k):
    g = torch.Generator().manual_seed(k)
    z = torch.randn(50, 6, generator=g, dtype=torch.float64)
    c = torch.randn(k, 6, generator=g, dtype=torch.float64)
    r = torch.rand(k, generator=g, dtype=torch.float64)
    s, idx = scores(z, c, r)
    for i in range(50):
        per = [float(((z[i] - c[j]) ** 2).sum() - r[j] ** 2) for j in range(k)]
        assert s[i].item() == pytest.approx(min(per), rel=1e-12)
        assert idx[i].item() == int(np.argmin(per))


def test_all_sq_distances_match_the_direct_form_and_are_never_negative():
    g = torch.Generator().manual_seed(6)
    z = torch.randn(300, 32, generator=g)
    c = torch.cat([z[:5], torch.randn(700, 32, generator=g)])  # five centres sit on points
    d = all_sq_distances(z, c)
    exact = (z[:, None] - c[None]).pow(2).sum(dim=2)
    assert d.shape == (300, 705) and bool((d >= 0).all())
    assert torch.allclose(d, exact, atol=1e-4 * float(exact.max()))


@pytest.mark.parametrize("rule", ["margin", "ratio", "distance"])
def test_scores_with_many_centres_are_the_exact_minimum_in_float32(rule):
    g = torch.Generator().manual_seed(7)
    z = torch.randn(400, 32, generator=g) * 3 + 10  # far from the origin, where the expanded form rounds most
    c = torch.cat([z[:3], torch.randn(2000, 32, generator=g) * 3 + 10])  # three centres sit on points
    r = torch.rand(2003, generator=g) + 0.5
    s, idx = scores(z, c, r, rule)
    exact = sphere_scores((z[:, None] - c[None]).pow(2).sum(dim=2), r, rule)
    assert torch.allclose(s, exact.min(dim=1).values, rtol=1e-5)
    assert torch.allclose(s, exact.gather(1, idx[:, None]).squeeze(1), rtol=1e-6)  # the chosen sphere, exactly
    if rule == "distance":
        assert torch.equal(s[:3], torch.zeros(3))  # not the expanded form's rounding noise


def test_sphere_head_keeps_centres_and_radii_in_state_dict():
    head = SphereHead(torch.randn(3, 4), torch.tensor([0.1, 0.2, 0.3]))
    sd = head.state_dict()
    assert set(sd) == {"centres", "radii"}
    other = SphereHead(torch.zeros(3, 4))
    other.load_state_dict(sd)
    assert torch.equal(other.radii, head.radii)


@pytest.mark.parametrize("rule", ["margin", "ratio", "distance"])
def test_score_rules_match_reference(rule):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(40, 5, generator=g, dtype=torch.float64)
    c = torch.randn(3, 5, generator=g, dtype=torch.float64)
    r = torch.rand(3, generator=g, dtype=torch.float64) + 0.5
    s, idx = scores(z, c, r, rule)
    for i in range(40):
        d = [float(((z[i] - c[j]) ** 2).sum()) for j in range(3)]
        per = {
            "margin": [d[j] - r[j] ** 2 for j in range(3)],
            "ratio": [d[j] / r[j] ** 2 for j in range(3)],
            "distance": d,
        }[rule]
        assert s[i].item() == pytest.approx(float(min(per)), rel=1e-12)
        assert idx[i].item() == int(np.argmin(per))
    assert torch.equal(nearest_sphere(z, c, r, rule), idx)


def test_margin_and_ratio_agree_on_outside_every_sphere():
    g = torch.Generator().manual_seed(4)
    z, c = torch.randn(500, 3, generator=g), torch.randn(4, 3, generator=g)
    r = torch.rand(4, generator=g) + 0.3
    margin = scores(z, c, r, "margin")[0] > OUTSIDE["margin"]
    ratio = scores(z, c, r, "ratio")[0] > OUTSIDE["ratio"]
    assert torch.equal(margin, ratio) and 0 < int(margin.sum()) < 500


def test_ratio_rule_with_zero_radius_is_finite_order():
    z = torch.tensor([[1.0], [2.0], [30.0]])
    s, _ = scores(z, torch.zeros(1, 1), torch.zeros(1), "ratio")
    assert torch.equal(s, torch.tensor([1.0, 4.0, 900.0]))  # no sphere has a size yet: the distance
    d = torch.tensor([[4.0, 4.0, 4.0]])
    per = sphere_scores(d, torch.tensor([0.0, 2.0, 1.0]), "ratio")  # a sizeless sphere counts as the smallest
    assert torch.equal(per, torch.tensor([[4.0, 1.0, 4.0]]))


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="accepted"):
        SphereHead(torch.zeros(1, 2), rule="nearest")


def test_shared_radius_is_one_quantile_over_all_points():
    g = torch.Generator().manual_seed(5)
    dist = torch.rand(90, generator=g, dtype=torch.float64) * 4
    labels = torch.randint(0, 3, (90,), generator=g)
    r = update_radii(dist, labels, torch.zeros(3, dtype=torch.float64), 0.1, shared=True)
    expected = torch.quantile(dist.sqrt(), 0.9)
    assert torch.allclose(r, expected.expand(3))
