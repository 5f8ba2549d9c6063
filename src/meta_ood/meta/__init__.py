"""Meta classification of OoD segment predictions (paper sections 4 and 7).

A logistic regression on standardized segment metrics decides whether a predicted OoD segment is
a false positive (target ``iou0`` = 1) or a true positive (``iou0`` = 0). The paper evaluates it
by leave-one-out cross validation over all segments; the released code refits
``LogisticRegression(solver="liblinear")`` once per segment, which takes minutes to hours.

This package solves the same problems exactly, but much faster:

* :class:`MetaClassifier` (:mod:`~meta_ood.meta.estimator`, solved by
  :mod:`~meta_ood.meta.newton`) -- L2-regularized logistic regression solved by damped Newton's
  method to a gradient norm of ``tol``. With ``penalize_intercept=True`` (default) the objective
  is liblinear's: ``0.5*||[w, b]||^2 + C * sum_i log(1 + exp(-y_i (w.x_i + b)))`` (the intercept
  is an extra constant feature and is penalized); with ``penalize_intercept=False`` it is
  ``0.5*||w||^2 + C * sum_i log(...)``, the objective of scikit-learn's ``lbfgs`` solver.
* :func:`loo_predict_proba` (:mod:`~meta_ood.meta.cv`) -- leave-one-out held-out probabilities,
  each from the minimizer of its fold's objective (not the one-step approximation), a few hundred
  times faster than one liblinear fit per segment (algorithm: :mod:`~meta_ood.meta.chord`).
* :func:`grouped_cv_predict_proba` -- leave-one-image-out, the honest protocol when segments of
  one image are correlated; same machinery with one fold per group.
* :func:`evaluate`, :func:`msp_baseline` (:mod:`~meta_ood.meta.evaluation`) -- AUROC / AUPRC /
  accuracy (paper table 3) and the maximum-softmax-probability baseline.
* :func:`meta_classify` (:mod:`~meta_ood.meta.classify`) -- the entry point of the pipeline stage.
* :func:`standardize`, :func:`reference_feature_names` (:mod:`~meta_ood.meta.inputs`) -- the
  released code's standardization and choice of input columns.

Degenerate input
----------------
* One class only (all segments TP or all FP): :class:`~meta_ood.errors.InputError` with
  ``on_single_class="raise"``; with ``on_single_class="constant"`` every probability is the class
  frequency (0 or 1) and a :class:`DegenerateInputWarning` is issued. :func:`meta_classify`, which
  the pipeline calls, defaults to ``"constant"`` so that a threshold without FP or without TP
  segments does not stop the workflow.
* A fold whose training rows hold one class (the held-out row was the only member of its class):
  with ``penalize_intercept=True`` the objective is still strictly convex with a finite minimizer,
  which is computed (liblinear itself refuses one-class data); with ``penalize_intercept=False`` no
  minimizer exists (the intercept diverges), and the limit of the predictions, the training class
  frequency (0 or 1), is returned with a :class:`DegenerateInputWarning`.
* Leave-one-image-out with all segments in one image: no fold has training rows, so the protocol
  has no estimate. :func:`grouped_cv_predict_proba` raises with ``on_single_group="raise"``; with
  ``on_single_group="nan"`` (what :func:`meta_classify` uses) every probability is NaN and a
  :class:`DegenerateInputWarning` is issued; :func:`meta_classify` then reports the protocol as
  unavailable: ``fallback = "single_group"``, AUROC / AUPRC / accuracy None, ``pred_fp`` False.
  Substituting leave-one-out would pass correlated segments of the same image off as an image-level
  estimate, so it is not done.
* Folds whose training rows hold one class are solved as described above (with two images, each
  holding one class, every fold is such a fold); :func:`meta_classify` reports their number as
  ``n_single_class_folds`` so that a table built on such folds can be recognized.
* Fewer rows than features and constant columns are fine: the L2 penalty keeps the problem
  strictly convex; a constant column standardizes to 0.
* NaN or inf in the features: :class:`~meta_ood.errors.InputError` naming the column.
"""

from __future__ import annotations

from meta_ood.meta.classify import meta_classify
from meta_ood.meta.cv import grouped_cv_predict_proba, loo_predict_proba
from meta_ood.meta.estimator import MetaClassifier
from meta_ood.meta.evaluation import evaluate, msp_baseline, msp_scores
from meta_ood.meta.inputs import (
    NON_FEATURE_COLUMNS,
    STD_EPS,
    DegenerateInputWarning,
    reference_feature_names,
    standardize,
)

__all__ = [
    "NON_FEATURE_COLUMNS",
    "STD_EPS",
    "DegenerateInputWarning",
    "MetaClassifier",
    "evaluate",
    "grouped_cv_predict_proba",
    "loo_predict_proba",
    "meta_classify",
    "msp_baseline",
    "msp_scores",
    "reference_feature_names",
    "standardize",
]
