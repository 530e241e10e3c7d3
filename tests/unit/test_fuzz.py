"""Input fuzzing: whatever array reaches a fitted detector's ``decision_function``, it returns one finite
score per row or raises ValueError with a message; no other exception, no NaN, no silent wrong length. A row
too large for float32 to measure its distances (the raw-pixel centres' term) may score +inf: anomalous, as
the scorer documents, never normal."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import load_digits

from toolkit import MultiRadiusDeepSVDD
from toolkit.recipes_loader import default_recipe, load_recipe

TINY = {"pretrain.epochs": 1, "svdd.epochs": 1, "svdd.warmup_epochs": 1}


@pytest.fixture(scope="module")
def detector():
    d = load_digits()
    x = d.data[np.isin(d.target, (0, 1))].astype(np.float32)
    return MultiRadiusDeepSVDD(load_recipe(default_recipe()), device="cpu", **TINY).fit(x)


DTYPES = st.sampled_from(
    [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_, np.complex64, np.str_, object]
)
# mostly the detector's own width (64), sometimes another; 0 to 3 rows; 0 to 3 dimensions in all
SHAPES = st.one_of(
    st.tuples(st.integers(0, 3), st.sampled_from([64, 64, 63, 1])),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    st.tuples(st.integers(1, 2), st.just(8), st.just(8)),
)
VALUES = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.floats(-20, 20)


def arrays(dtype, shape):
    if dtype is np.str_:
        return hnp.arrays("U4", shape, elements=st.sampled_from(["1", "0.5", "nan", "a", ""]))
    if dtype is object:
        return hnp.arrays(object, shape, elements=st.sampled_from([1.0, None, "x", [1, 2], 3]))
    if np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating):
        return hnp.arrays(dtype, shape, elements=VALUES.map(lambda v: np.asarray(v).astype(dtype)[()]))
    return hnp.arrays(dtype, shape)


@pytest.mark.slow  # a (tiny) fit, then a few hundred scoring calls
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), non_finite=st.sampled_from(["raise", "anomaly"]))
def test_decision_function_returns_finite_scores_or_raises_value_error(detector, data, non_finite):
    x = data.draw(DTYPES.flatmap(lambda dt: SHAPES.flatmap(lambda sh: arrays(dt, sh))))
    detector.set_params(non_finite=non_finite)
    try:
        s = detector.decision_function(x)
    except ValueError as e:
        assert str(e).strip()
        return
    assert s.shape == (len(x),)
    rows = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    bad = ~np.isfinite(rows.astype(np.float32)).all(axis=1)
    with np.errstate(over="ignore"):  # rows whose squared distances overflow float32 (the raw-pixel centres' term)
        huge = ~bad & ~np.isfinite(np.square(rows.astype(np.float32)).sum(axis=1, dtype=np.float32))
    assert not np.isnan(s).any()
    assert np.isfinite(s[~bad & ~huge]).all()
    assert np.isposinf(s[bad]).all()  # non_finite="anomaly": unscorable rows are anomalies, never normal
    assert (np.isfinite(s[huge]) | np.isposinf(s[huge])).all()  # too large to measure: +inf, never normal
