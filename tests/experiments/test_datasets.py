"""The dataset registry: every dataset loads with provenance; synthetic truth is as specified."""

import numpy as np
import pytest

from experiments.datasets import DATASETS, Dataset, load_dataset, register_dataset
from experiments.datasets.registry import check_dataset_params

EXPECTED = {"three_cluster_diag", "blobs", "height", "poisson_two_rates", "generated",
            "faithful", "faithful_waiting", "iris", "london_deaths", "low_dim_gauss_mix"}


def test_registry_has_every_dataset_with_description_and_provenance():
    assert EXPECTED <= set(DATASETS)
    for entry in DATASETS.values():
        assert entry.description and entry.provenance
        ds = load_dataset(entry.name)
        assert ds.X.ndim == 2 and len(ds.X) > 0 and np.all(np.isfinite(ds.X))
        assert len(ds.feature_names) == len(ds.units) == ds.X.shape[1]
        if entry.family == "poisson":
            assert ds.X.dtype.kind == "i" and ds.X.min() >= 0


def test_three_cluster_diag_matches_the_theory_example():
    ds = load_dataset("three_cluster_diag")
    assert ds.X.shape == (2000, 2)
    np.testing.assert_array_equal(np.bincount(ds.labels), [400, 600, 1000])
    np.testing.assert_allclose(ds.truth["means"], [[0.5, 0.5], [5.5, 2.5], [1, 7]])
    np.testing.assert_allclose([np.diag(c) for c in ds.truth["covariances"]],
                               [[1, 3], [2, 2], [6, 2]])
    for k in range(3):  # the sample agrees with its truth
        np.testing.assert_allclose(ds.X[ds.labels == k].mean(0), ds.truth["means"][k], atol=0.25)


def test_real_data_sizes_and_provenance_file():
    assert load_dataset("faithful").X.shape == (272, 2)
    np.testing.assert_array_equal(load_dataset("faithful_waiting").X[:, 0],
                                  load_dataset("faithful").X[:, 1])
    deaths = load_dataset("london_deaths").X[:, 0]
    assert len(deaths) == 1096 and deaths.max() == 9 and np.sum(deaths == 0) == 162
    assert load_dataset("low_dim_gauss_mix").X.shape == (1000, 1)
    iris = load_dataset("iris")
    assert iris.X.shape == (150, 4) and set(iris.labels) == {0, 1, 2}
    from importlib import resources

    note = (resources.files("experiments") / "data" / "PROVENANCE.md").read_text()
    for name in ("faithful.csv", "london_deaths.csv", "posteriordb_low_dim_gauss_mix.json"):
        assert name in note


def test_poisson_and_height_truth():
    p = load_dataset("poisson_two_rates")
    np.testing.assert_allclose(p.truth["rates"][:, 0], [2.0, 6.0])
    h = load_dataset("height")
    np.testing.assert_allclose(h.truth["weights"], [0.8, 0.2])


@pytest.mark.parametrize("n,d,k", [(50, 1, 1), (300, 3, 4), (1000, 5, 2)])
def test_generator_any_size(n, d, k):
    ds = load_dataset("generated", n=n, d=d, k=k)
    assert ds.X.shape == (n, d)
    assert ds.truth["means"].shape == (k, d) and ds.truth["covariances"].shape == (k, d, d)
    assert np.isclose(ds.truth["weights"].sum(), 1.0)
    np.testing.assert_array_equal(ds.X, load_dataset("generated", n=n, d=d, k=k).X)


def test_bad_dataset_references_name_the_problem():
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(ValueError, match="no parameter"):
        check_dataset_params("faithful", {"n": 3})


def test_register_a_dataset_in_one_call():
    @register_dataset("unit_test_line", family="gaussian", description="d", provenance="p")
    def line(n=10):
        return Dataset(np.arange(n, dtype=float))

    try:
        ds = load_dataset("unit_test_line", n=4)
        assert ds.X.shape == (4, 1) and ds.units == ("a.u.",)
    finally:
        del DATASETS["unit_test_line"]
