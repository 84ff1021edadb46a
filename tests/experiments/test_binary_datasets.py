"""Binary data for the Bernoulli family: digits_binary reproduces the published independent-pixel
number, binarized MNIST keeps its own split, subsamples, and the family checks its values."""

import hashlib
from importlib import resources

import numpy as np
import pytest

from experiments.cells import Cell
from experiments.datasets import DATASETS, Dataset, load_dataset, register_dataset
from experiments.problem import build_problem, split_rows


def test_digits_binary_independent_pixels_score_the_issue_17_number():
    ds = load_dataset("digits_binary")
    assert ds.X.shape == (1797, 64) and ds.X.dtype == np.int8 and set(np.unique(ds.X)) == {0, 1}
    assert ds.family == "bernoulli" and set(ds.labels) == set(range(10))
    from sklearn.datasets import load_digits

    np.testing.assert_array_equal(ds.X, load_digits().data > 8)  # on: grey level > 8 of 16
    rows = split_rows(ds, 0.2)
    train, test = ds.X[rows["train"]].astype(float), ds.X[rows["test"]].astype(float)
    assert (len(train), len(test)) == (1438, 359)
    # independent pixels, Laplace-smoothed frequencies of the training images, per test image
    p = (train.sum(0) + 1) / (len(train) + 2)
    per_image = (test * np.log(p) + (1 - test) * np.log1p(-p)).sum(1).mean()
    assert round(per_image, 2) == -24.24  # issue 17: "independent pixels -24.24 nats"


def test_binarized_mnist_has_its_own_split_and_subsamples():
    path = resources.files("experiments") / "data" / "binarized_mnist.npz"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    note = (resources.files("experiments") / "data" / "PROVENANCE.md").read_text()
    assert digest in note
    small = load_dataset("binarized_mnist", n_train=300, n_valid=50, n_test=80)
    assert small.X.shape == (430, 784) and small.X.dtype == np.int8
    assert {k: len(v) for k, v in small.split.items()} == {"train": 300, "valid": 50,
                                                           "test": 80}
    assert small.labels is None and set(np.unique(small.X)) == {0, 1}
    again = load_dataset("binarized_mnist", n_train=300, n_valid=50, n_test=80)
    assert again is small  # cached per process
    with pytest.raises(ValueError):
        again.X[0, 0] = 1  # read-only: a method cannot change the cached data
    with np.load(path) as f:  # the subsample is rows of the file, unpacked as documented
        packed = f["test"]
    test_rows = small.X[small.split["test"]]
    hits = [np.flatnonzero((np.unpackbits(packed, axis=1)[:, :784] == r).all(1))
            for r in test_rows[:5]]
    assert all(len(h) >= 1 for h in hits)
    # the held-out set is the dataset's test split, whatever the grid's fraction
    cell = Cell("binarized_mnist", "unit", None, "m", dataset_params={
        "n_train": 300, "n_valid": 50, "n_test": 80}, held_out_fraction=None)
    from experiments.models_registry import MODELS, register_model

    register_model("unit", data_family="bernoulli", numpyro_model=lambda X: None)
    try:
        problem = build_problem(cell)
    finally:
        MODELS.pop("unit")
    assert problem.X_train.shape == (300, 784) and problem.X_valid.shape == (50, 784)
    np.testing.assert_array_equal(problem.X_test, test_rows)


def test_full_binarized_mnist_sizes():
    ds = load_dataset("binarized_mnist")
    assert {k: len(v) for k, v in ds.split.items()} == {"train": 50000, "valid": 10000,
                                                        "test": 10000}
    assert ds.X[ds.split["train"]].mean() == pytest.approx(0.131, abs=5e-4)


def test_bernoulli_family_checks_values_and_splits():
    @register_dataset("unit_test_bits", family="bernoulli", description="d", provenance="p")
    def bits(value: float = 1.0):
        return Dataset(np.array([[0.0, value], [1.0, 0.0]]))

    @register_dataset("unit_test_bad_split", family="bernoulli", description="d",
                      provenance="p", predefined_split=True)
    def bad_split(overlap: bool = True):
        return Dataset(np.zeros((4, 2)), split={"train": [0, 1, 2], "test": [2, 3] if overlap
                                                else [3]})

    try:
        assert load_dataset("unit_test_bits").X.dtype == np.int8
        with pytest.raises(ValueError, match=r"Bernoulli data must be 0 or 1, found values "
                                             r"\[0.5\]"):
            load_dataset("unit_test_bits", value=0.5)
        with pytest.raises(ValueError, match="overlaps"):
            load_dataset("unit_test_bad_split")
        assert len(load_dataset("unit_test_bad_split", overlap=False).split["test"]) == 1
    finally:
        DATASETS.pop("unit_test_bits")
        DATASETS.pop("unit_test_bad_split")
