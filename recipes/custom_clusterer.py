"""A recipe that defines and registers its own clusterer inline: a Gaussian mixture
(``python -m toolkit custom_clusterer --clustering.options.n_components=4``)."""

from pathlib import Path

from sklearn.mixture import GaussianMixture

from toolkit import apply_overrides, load_recipe, register_clusterer


@register_clusterer("gmm")
def gmm(n_components: int = 3, covariance_type: str = "diag", random_state: int = 0) -> GaussianMixture:
    """Gaussian mixture; ``fit_predict`` gives each point its most likely component."""
    return GaussianMixture(n_components=n_components, covariance_type=covariance_type, random_state=random_state)


config = apply_overrides(
    load_recipe(Path(__file__).with_name("digits.py")),
    {"name": "custom_clusterer", "clustering.name": "gmm", "clustering.options": {"n_components": 3}},
)
