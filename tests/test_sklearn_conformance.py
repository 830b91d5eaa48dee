"""scikit-learn conformance: its own estimator checks on all five classifiers, the tags of their
scikit-learn counterparts, and the discrete Naive Bayes predictives against scikit-learn's."""

import numpy as np
import pytest
import sklearn.discriminant_analysis as sk_da
import sklearn.naive_bayes as sk_nb
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from probgen.classifiers import LDA, QDA, BernoulliNB, CategoricalNB, GaussianNB

# the conjugate posterior (the default): the checks fit many small problems, in closed form
ESTIMATORS = [GaussianNB(), BernoulliNB(), CategoricalNB(), LDA(), QDA()]
COUNTERPARTS = {
    GaussianNB: sk_nb.GaussianNB,
    BernoulliNB: sk_nb.BernoulliNB,
    CategoricalNB: sk_nb.CategoricalNB,
    LDA: sk_da.LinearDiscriminantAnalysis,
    QDA: sk_da.QuadraticDiscriminantAnalysis,
}


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls", list(COUNTERPARTS))
def test_tags_match_the_sklearn_counterpart(cls):
    ours, theirs = get_tags(cls()), get_tags(COUNTERPARTS[cls]())
    assert ours.estimator_type == theirs.estimator_type == "classifier"
    assert (ours.transformer_tags is None) == (theirs.transformer_tags is None)
    for field in ("categorical", "positive_only", "allow_nan", "two_d_array"):
        assert getattr(ours.input_tags, field) == getattr(theirs.input_tags, field), field
    assert ours.classifier_tags.poor_score == theirs.classifier_tags.poor_score
    assert ours.input_tags.sparse is False  # dense only: sparse input is refused, as the checks expect


def _class_log_prior(y: np.ndarray, num_classes: int) -> np.ndarray:
    """The Dirichlet(1) posterior predictive of the class: (n_c + 1) / (N + C)."""
    counts = np.bincount(y, minlength=num_classes)
    return np.log((counts + 1) / (len(y) + num_classes))


def test_bernoulli_binarize_matches_sklearn_feature_likelihoods():
    """Beta(1, 1) predictive = scikit-learn's alpha=1 smoothing, after the same binarize threshold;
    the class terms differ by construction (Dirichlet predictive vs empirical frequency)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    X = rng.normal(size=(120, 6)) + y[:, None] * np.linspace(-0.8, 0.8, 6)
    ours = BernoulliNB(binarize=0.3).fit(X, y)
    theirs = sk_nb.BernoulliNB(alpha=1.0, binarize=0.3).fit(X, y)
    feature_part = ours.predict_joint_log_proba(X) - _class_log_prior(y, 3)
    expected = theirs.predict_joint_log_proba(X) - theirs.class_log_prior_
    np.testing.assert_allclose(feature_part, expected, rtol=1e-10)
    # binarize=None on the binarized features gives the same fit
    binary = (X > 0.3).astype(float)
    np.testing.assert_allclose(
        BernoulliNB(binarize=None).fit(binary, y).predict_log_proba(binary), ours.predict_log_proba(X)
    )


def test_categorical_matches_sklearn_feature_likelihoods():
    """Dirichlet(1) predictive = scikit-learn's CategoricalNB(alpha=1) when every feature shows all levels."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    X = np.minimum(rng.integers(0, 3, (200, 4)) + y[:, None], 3)
    assert all(len(np.unique(column)) == 4 for column in X.T)
    ours = CategoricalNB().fit(X, y)
    theirs = sk_nb.CategoricalNB(alpha=1.0).fit(X, y)
    feature_part = ours.predict_joint_log_proba(X) - _class_log_prior(y, 2)
    expected = theirs.predict_joint_log_proba(X) - theirs.class_log_prior_
    np.testing.assert_allclose(feature_part, expected, rtol=1e-10)
    np.testing.assert_allclose(np.exp(ours.predict_log_proba(X)).sum(1), 1.0, rtol=1e-12)
    # a level beyond those fitted is refused, not indexed
    with pytest.raises(ValueError, match=r"value 4.0 .* outside the support .discrete\(4\)"):
        ours.predict([[4, 0, 0, 0]])
