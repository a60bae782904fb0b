"""One ``explain`` call, framework-free: the predictor's probabilities, the generator's forward pass, the
proposals, the refinement and the :class:`~alibi.api.interfaces.Explanation`, all read from one
:class:`~alibi_countergan.fitted.FittedState`.

:class:`~alibi_countergan.explainer.CounteRGAN` builds an :class:`Inference` from its fitted state for each
call (and for each training step's cost weights); nothing here changes the explainer.
"""

import functools
import math
import pickle
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from alibi.api.interfaces import Explanation

from alibi_countergan.backends import Backend
from alibi_countergan.checks import as_instances, check_explain_values, check_probabilities
from alibi_countergan.constraints import project
from alibi_countergan.diverse import describe, diverse_counterfactuals, ranked
from alibi_countergan.features import FeatureKey, check_onehot, freeze, resolve_features
from alibi_countergan.fitted import FittedState
from alibi_countergan.ops import NUMPY_OPS
from alibi_countergan.refine import SEARCH_OTHER_CLASSES, Criterion, Refiner, Search, choose_targets, search_budget
from alibi_countergan.table import TableSchema, table_explanation
from alibi_countergan.targets import TargetClass, resolve_targets

CHUNK_VALUES = 2 ** 20
"""Input values per chunk of a batched forward pass (the predictor's or the generator's): about a
thousand MNIST images or 65,000 rows of 16 features. A convolutional network's first layers hold
tens of times more values than its input, so whole-batch passes over tens of thousands of images
would need gigabytes; chunks of this size keep the memory small at no cost in speed."""


def chunk_rows(n_features: int) -> int:
    """Rows per chunk of a batched forward pass."""
    return max(64, CHUNK_VALUES // max(1, n_features))


def probability_function(predictor: Any) -> Callable[[Any], Any]:
    """What to call for class probabilities: ``predict_proba`` of an estimator (a scikit-learn ``Pipeline``...),
    else the predictor itself."""
    method = getattr(predictor, "predict_proba", None)
    return method if callable(method) else predictor


def predict_proba(predictor: Any, x: np.ndarray, n_classes: Optional[int], schema: Optional[TableSchema],
                  backend: Optional[Backend]) -> np.ndarray:
    """The predictor's checked probabilities for a batch shaped like the (encoded) data, in chunks.

    With a table schema, the rows are encoded and the predictor gets them in the table's own form: a DataFrame,
    or alibi's label-encoded array. ``backend``: the backend of the predictor's framework, which calls a model
    of that framework (None for any other callable or estimator).
    """
    # a model of the backend's framework goes through the backend (no predict_proba looked up: a torch module's
    # missing attribute costs an exception)
    function = functools.partial(backend.predict, predictor) if backend is not None else \
        probability_function(predictor)
    outputs = []
    rows = chunk_rows(math.prod(x.shape[1:]))
    for start in range(0, len(x), rows):
        chunk = x[start:start + rows]
        if schema is not None:
            chunk = schema.write(chunk.reshape(len(chunk), -1), dtype=np.float32)
        outputs.append(function(chunk))
    try:
        proba = np.concatenate([np.asarray(o) for o in outputs]) if len(outputs) > 1 else outputs[0]
    except ValueError as err:
        raise ValueError(f"The predictor's outputs for consecutive chunks do not fit together: {err}") from None
    return check_probabilities(proba, len(x), n_classes=n_classes)


@dataclass(frozen=True)
class Inference:
    """What one call works with.

    Attributes
    ----------
    state
        The fitted state, read once by the explainer.
    predict
        The predictor's checked probabilities for flat encoded rows (in the table's form when there is one).
    """

    state: FittedState
    predict: Callable[[np.ndarray], np.ndarray]

    def counterfactuals(self, x: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Counterfactuals for flat rows ``x`` (float32 or float64) and one target each: one forward pass."""
        state = self.state
        space = state.space
        x_std = space.network_inputs(x)
        mask32 = mask.astype(np.float32)
        rows = chunk_rows(x.shape[1])
        parts = [state.backend.generate(x_std[i:i + rows], state.eye[target[i:i + rows]], mask32[i:i + rows])
                 for i in range(0, len(x), rows)]
        u = parts[0] if len(parts) == 1 else np.concatenate(parts)  # one chunk: every call but the largest batches'
        return project(NUMPY_OPS, x, u.astype(x.dtype), mask.astype(x.dtype), space.tensors_for(x.dtype), hard=True)

    def proposals(self, flat: np.ndarray, targets: Optional[np.ndarray], mask: np.ndarray
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The generator's counterfactuals: ``(targets, cf, cf_proba, orig_proba)``, one predictor call.

        For ``targets`` None ('other'), every other class is tried at once and the one the predictor rates
        highest kept, per row. A row the predictor already assigns to its target is its own counterfactual.
        """
        n, k = len(flat), self.state.n_classes
        if targets is None:
            orig_proba = self.predict(flat)
            candidates = (orig_proba.argmax(axis=1)[:, None] + np.arange(1, k)[None, :]) % k
            rows = np.repeat(np.arange(n), k - 1)
            cf_all = self.counterfactuals(flat[rows], candidates.reshape(-1), mask[rows])
            proba_all = self.predict(cf_all)
            best = proba_all[np.arange(len(rows)), candidates.reshape(-1)].reshape(n, k - 1).argmax(axis=1)
            pick = np.arange(n) * (k - 1) + best
            return candidates[np.arange(n), best], cf_all[pick], proba_all[pick], orig_proba
        return self.scored(flat, self.counterfactuals(flat, targets, mask), targets[:, None])

    def scored(self, flat: np.ndarray, proposals: np.ndarray, options: np.ndarray
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The originals and the proposals scored in one call, each row's target chosen among its ``options`` (see
        :meth:`Refiner.search`): ``(targets, cf, cf_proba, orig_proba)``. A row the predictor already assigns to
        its target is its own counterfactual."""
        n = len(flat)
        proba = self.predict(np.concatenate([flat, proposals]))
        orig_proba, prop_proba = proba[:n], proba[n:]
        targets, source = choose_targets(options, orig_proba, prop_proba)
        cf, cf_proba = proposals[source], prop_proba[source]
        already = orig_proba.argmax(axis=1) == targets
        cf[already], cf_proba[already] = flat[already], orig_proba[already]
        return targets, cf, cf_proba, orig_proba

    def searched(self, flat: np.ndarray, targets: Optional[np.ndarray], mask: np.ndarray, refiner: Refiner
                 ) -> Optional[Search]:
        """The generator's proposals refined by :meth:`Refiner.search` in one predictor call, for a small batch of
        rows that are not wide; None, with no call, for the others (see
        :data:`~alibi_countergan.refine.SEARCH_CALL_VALUES`).

        For ``targets`` None ('other') with up to :data:`SEARCH_OTHER_CLASSES` classes, every class's proposal is
        made and scored (the original's class is known only after the call). Where the candidates turn out to be
        too many for one call, the proposals are scored alone in that call, with nothing refined.
        """
        n, k = len(flat), self.state.n_classes
        if targets is None and k > SEARCH_OTHER_CLASSES:
            return None
        options = np.tile(np.arange(k), (n, 1)) if targets is None else targets[:, None]
        m = options.shape[1]
        if refiner.wide or search_budget(n * (m + 1), flat.shape[1]) < 0:
            return None
        rows = np.repeat(np.arange(n), m)
        proposals = self.counterfactuals(flat[rows], options.reshape(-1), mask[rows])
        found = refiner.search(flat, proposals, options, mask)
        if found is not None:
            return found
        targets, cf, cf_proba, x_proba = self.scored(flat, proposals, options)
        return Search(targets=targets, cf=cf, proba=cf_proba, x_proba=x_proba, done=x_proba.argmax(axis=1) == targets)

    def bracketed(self, flat: np.ndarray, targets: np.ndarray, mask: np.ndarray, refiner: Refiner
                  ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Refined counterfactuals of wide rows (images) with explicit targets: ``(targets, cf, cf_proba,
        orig_proba)``. The originals, the proposals and the proposals' bracket (:meth:`Refiner.bracket`) are
        scored in one call, so that the shrink needs one more: two calls for an image whose proposal reaches its
        target, the same rows scored as by a shrink that starts from the proposal alone."""
        n = len(flat)
        proposals = self.counterfactuals(flat, targets, mask)
        points = refiner.bracket(flat, proposals, mask)
        proba = self.predict(np.concatenate([flat, proposals, points.reshape(-1, flat.shape[1])]))
        orig_proba, cf_proba = proba[:n], proba[n:2 * n]
        points_proba = proba[2 * n:].reshape(len(points), n, proba.shape[1])
        cf = proposals
        done = orig_proba.argmax(axis=1) == targets
        cf[done], cf_proba[done] = flat[done], orig_proba[done]
        todo = np.flatnonzero(~done)
        if todo.size:
            cf[todo], cf_proba[todo] = refiner.refine(flat[todo], cf[todo], targets[todo], mask[todo], cf_proba[todo],
                                                      orig_proba[todo], (points[:, todo], points_proba[:, todo]))
        return targets, cf, cf_proba, orig_proba

    def first_counterfactuals(self, flat: np.ndarray, targets: Optional[np.ndarray], mask: np.ndarray,
                              refiner: Refiner, refine: bool
                              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The counterfactual of each row: ``(targets, cf, cf_proba, orig_proba)``. With ``refine``, images with
        explicit targets take :meth:`bracketed`; other rows the one-call search where it applies (:meth:`searched`),
        then the refinement's stages for the rows it leaves over; without ``refine``, the generator's proposals."""
        if refine and refiner.wide and targets is not None:
            return self.bracketed(flat, targets, mask, refiner)
        searched = self.searched(flat, targets, mask, refiner) if refine else None
        if searched is None:
            targets, cf, cf_proba, orig_proba = self.proposals(flat, targets, mask)
            done = orig_proba.argmax(axis=1) == targets
        else:
            targets, cf, cf_proba, orig_proba = searched.targets, searched.cf, searched.proba, searched.x_proba
            done = searched.done
        todo = np.flatnonzero(~done)
        repair: Optional[Tuple[np.ndarray, Optional[np.ndarray]]] = None
        if searched is not None and todo.size:  # proposals that miss: grown in a second call (searched.cf is each)
            cf[todo], cf_proba[todo], grown, repair = refiner.grow(flat[todo], cf[todo], cf_proba[todo], targets[todo],
                                                                   mask[todo])
            todo = todo[~grown]
        if refine and todo.size:
            cf[todo], cf_proba[todo] = refiner.refine(flat[todo], cf[todo], targets[todo], mask[todo], cf_proba[todo],
                                                      orig_proba[todo], repair=repair)
        return targets, cf, cf_proba, orig_proba

    def refiner(self, dtype: np.dtype, criterion: Criterion) -> Refiner:
        """The refinement of the generator's counterfactuals, for inputs of ``dtype``."""
        space = self.state.space
        return Refiner(space, space.tensors_for(dtype), self.predict, criterion, regenerate=self.counterfactuals)

    def explain(self, X: Any, target_class: TargetClass, immutable_features: Sequence[FeatureKey], refine: bool,
                criterion: Criterion, n_counterfactuals: int, meta: Dict[str, Any]) -> Explanation:
        """The body of :meth:`CounteRGAN.explain <alibi_countergan.explainer.CounteRGAN.explain>`, its arguments
        checked (``target_class`` resolved to the request's or the explainer's)."""
        core, table, space = self.state.encoded, self.state.table, self.state.space
        if table is None:
            x_batch, _ = as_instances(X, core.feature_shape, "X")
            where: Tuple[Any, Any] = (None, None)
        else:
            encoded, index, order = table.read(X, "X")
            x_batch, where = encoded, (index, order)
        check_explain_values(x_batch, space, core.feature_names)
        n = len(x_batch)
        targets = resolve_targets(target_class, n, self.state.n_classes)
        flat = x_batch.reshape(n, -1)
        check_onehot(flat, space.groups, "X")
        if table is not None:
            immutable_features = [table.encoded_key(k, "immutable_features") for k in immutable_features]
        frozen = resolve_features(list(immutable_features), core.n_features, core.feature_names,
                                  "immutable_features", space.groups)
        # the space's mask already freezes one-hot groups as a whole (built by freeze); read-only either way
        mask = np.broadcast_to(freeze(space.mutable, frozen, space.groups) if frozen else space.mutable, flat.shape)
        refiner = self.refiner(flat.dtype, criterion)
        targets, cf_flat, cf_proba, orig_proba = self.first_counterfactuals(flat, targets, mask, refiner, refine)
        diverse = None
        if n_counterfactuals > 1:
            found = diverse_counterfactuals(flat, cf_flat, cf_proba, targets, mask, refiner, self.counterfactuals,
                                            refine=refine, x_proba=orig_proba, k=n_counterfactuals)
            picks = ranked(found, n, n_counterfactuals)
            first = np.array([p[0] for p in picks])
            cf_flat, cf_proba = found.cf[first], found.proba[first]
            diverse = [describe(found, p, core.feature_shape, refiner, core.feature_names) for p in picks]
        explanation = build_explanation(meta, x_batch, cf_flat, cf_proba, orig_proba, targets, criterion, diverse)
        return explanation if table is None else table_explanation(explanation, table, *where)


def build_explanation(meta: Dict[str, Any], x: np.ndarray, cf_flat: np.ndarray, cf_proba: np.ndarray,
                      orig_proba: np.ndarray, targets: np.ndarray, criterion: Criterion,
                      diverse: Optional[List[Dict[str, Any]]] = None) -> Explanation:
    """An :class:`~alibi.api.interfaces.Explanation` in CounterfactualProto's layout (see
    :meth:`CounteRGAN.explain <alibi_countergan.explainer.CounteRGAN.explain>`), with a copy of ``meta``."""
    n = len(x)
    cf_x = cf_flat.reshape(x.shape)
    cf_class = cf_proba.argmax(axis=1)
    orig_class = orig_proba.argmax(axis=1)
    # with a target probability, a counterfactual that the predictor gives a lower one misses its target
    # (an instance already of its target class stays its own counterfactual)
    success = criterion.reached(cf_proba, targets) | (orig_class == targets)
    data: Dict[str, Any] = {"cf": {"X": cf_x, "class": cf_class, "proba": cf_proba},
                            "orig_class": orig_class, "orig_proba": orig_proba, "target": targets,
                            "success": success, "residual": cf_x - x}
    if diverse is not None:
        data["counterfactuals"] = diverse
    if n == 1:
        data["cf"]["class"] = cf_class[0]
        data["orig_class"] = orig_class[0]
        data["target"] = targets[0]
        data["success"] = bool(success[0])
        if diverse is not None:
            data["counterfactuals"] = diverse[0]
    # the metadata is plain data (JSON types): a pickle round trip copies it several times faster than
    # copy.deepcopy, which was the largest fixed cost of a one-row explanation
    return Explanation(meta=pickle.loads(pickle.dumps(meta, protocol=pickle.HIGHEST_PROTOCOL)), data=data)

