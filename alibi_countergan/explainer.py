"""The CounteRGAN explainer: framework-free parameters, training schedule and explanations."""

import copy
import dataclasses
import functools
import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from alibi.api.interfaces import Explainer, Explanation, FitMixin

from alibi_countergan.backends import (
    Backend,
    Batch,
    NetworkSpec,
    TrainingSpec,
    framework_of,
    load_backend,
    resolve_backend,
)
from alibi_countergan.callbacks import Callback
from alibi_countergan.checks import as_instances, check_bool, check_fit_scale, check_int, check_target_proba
from alibi_countergan.constraints import FeatureSpace
from alibi_countergan.features import (
    FeatureKey,
    MonotoneSpec,
    build_feature_space,
    check_onehot,
)
from alibi_countergan.fitted import FittedState
from alibi_countergan.inference import Inference, predict_proba
from alibi_countergan.jsonvalue import from_json_value
from alibi_countergan.layout import ImageLayout
from alibi_countergan.params import CounteRGANConfig, ParameterAttributes, check_predictor, resolve_white_box
from alibi_countergan.refine import Criterion
from alibi_countergan.table import FRAME, TableSchema, as_frame, encoded_config, is_table
from alibi_countergan.targets import OTHER, TargetClass
from alibi_countergan.threads import fit_thread_policy, thread_policy
from alibi_countergan.training import BatchSampler, train_networks
from alibi_countergan.upstream import mirror_meta
from alibi_countergan.value import LossWeights

logger = logging.getLogger(__name__)

DEFAULT_META: Dict[str, Any] = {
    "name": None,
    "type": [],
    "explanations": ["local"],
    "params": {},
    "version": None,
}
"""Metadata of a CounteRGAN explainer before ``fit`` fills in the method and framework."""

class CounteRGAN(ParameterAttributes, Explainer, FitMixin):
    """Counterfactuals from a residual GAN, in one forward pass (Nemirovsky et al., UAI 2022).

    ``fit`` trains a generator ``G(x, t)`` such that ``x + G(x, t)`` is realistic (a discriminator
    cannot tell it from the fit data), is classified as ``t`` and changes few features by little;
    ``explain`` is then one forward pass for a whole batch.

    Every constructor parameter is also an attribute (``explainer.train_steps``), read from the checked
    :attr:`config`; assigning one checks it again (see :meth:`set_params`).

    ``fit`` learns, besides the networks (``backend_``) and the feature space (``space_``): ``table_``, the
    schema of a table fitted on (a DataFrame, or alibi's label-encoded array with ``category_map``; None for
    plain arrays, see :mod:`alibi_countergan.table`), and ``encoded_config_``, the parameters translated to the
    generator's encoded features (the same as :attr:`config` without a table).
    """

    config: CounteRGANConfig
    """The checked parameters (:class:`alibi_countergan.params.CounteRGANConfig`)."""

    def __init__(
        self,
        predictor: Union[Callable[[np.ndarray], np.ndarray], Any],
        shape: Tuple[int, ...],
        *,
        backend: Optional[str] = None,
        method: str = "auto",
        target_class: TargetClass = OTHER,
        target_proba: Optional[float] = None,
        refine: bool = True,
        feature_range: Optional[Tuple[Any, Any]] = None,
        feature_names: Optional[Sequence[str]] = None,
        immutable_features: Sequence[FeatureKey] = (),
        monotone: Optional[MonotoneSpec] = None,
        cat_vars: Optional[Mapping[int, int]] = None,
        ohe: bool = True,
        category_map: Optional[Mapping[FeatureKey, Sequence[Any]]] = None,
        ordinal_features: Union[Sequence[FeatureKey], Mapping[FeatureKey, Sequence[float]], None] = None,
        continuous_features: Sequence[FeatureKey] = (),
        category_cost: Union[float, Mapping[FeatureKey, float]] = 1.0,
        random_mask_rate: Optional[float] = None,
        train_steps: int = 1000,
        batch_size: int = 256,
        discriminator_steps: int = 1,
        generator_steps: int = 2,
        learning_rate: float = 1e-3,
        discriminator_learning_rate: Optional[float] = None,
        classifier_weight: float = 10.0,
        l1_weight: float = 0.1,
        l2_weight: float = 0.0,
        min_change: float = 0.1,
        real_weight_power: float = 4.0,
        weight_averaging: float = 0.25,
        residual: bool = True,
        generator: Any = None,
        discriminator: Any = None,
        data_format: Optional[str] = None,
        seed: int = 0,
        n_threads: Optional[int] = 1,
        callbacks: Sequence[Callback] = (),
        verbose: bool = True,
    ) -> None:
        """Store and check the parameters; nothing is trained until :meth:`fit`.

        Parameters
        ----------
        predictor
            The classifier. A ``torch.nn.Module`` (or a ``tf.keras.Model`` with the TensorFlow
            backend) returning class probabilities allows white-box training. In black-box mode: a fitted
            scikit-learn estimator or ``Pipeline`` (any object with ``predict_proba``), or any callable from a
            batch to a ``(n, n_classes)`` probability matrix. The predictor is called on the data's own form: a
            DataFrame with the fit data's columns and dtypes for an explainer fitted on a DataFrame, alibi's
            label-encoded array with ``category_map``, else a numpy array.
        shape
            Shape of one instance, as alibi writes it: ``(1,) + X.shape[1:]`` (``X.shape[1:]`` works too). For a
            table (a DataFrame, or an array with ``category_map``), ``(1, n_columns)``.
        backend
            ``'pytorch'`` or ``'tensorflow'``; None follows the predictor's framework, and for a plain
            function takes whichever framework is installed (PyTorch first).
        method
            ``'white-box'``: the generator is trained through the predictor's gradients (paper eq. 2
            to 4). ``'black-box'``: the predictor is only called on numpy arrays, and the
            discriminator's real data are weighted by the predictor's probability of the target
            (eq. 5). ``'auto'``: white-box when the predictor is a model of the backend's
            framework, black-box otherwise.
        target_class
            Default target of :meth:`explain`: a class index, a list with one entry for all rows or
            one per row, or ``'other'`` (the best class other than the predicted one).
        target_proba
            When a counterfactual counts as reaching its target, for training and for the refinement of
            :meth:`explain`: None (default) asks for the target class to beat every other class by a small
            margin (:data:`alibi_countergan.refine.BOUNDARY_MARGIN`, 0.05 in probability), just past the
            decision boundary; a number in ``(0, 1)`` asks for at least that probability (as alibi's
            ``Counterfactual(target_proba=...)``). Higher values give more robust, larger changes.
        refine
            Whether :meth:`explain` refines the generator's output by default (see
            :mod:`alibi_countergan.refine`): rows that miss their target are repaired, and every
            counterfactual is made minimal (unneeded changes reverted, the rest shrunk towards the original)
            with a few batched predictor calls. False returns the generator's raw output.
        feature_range
            ``(lower, upper)`` bounds of the counterfactuals: scalars or arrays broadcastable to the
            instance shape (as in CFProto). None uses the range of the fit data (per feature; per
            channel for images).
        feature_names
            Names of the (flattened) features, to name features in the other parameters. With a DataFrame the
            columns name the features; ``feature_names`` may then fix their order.
        immutable_features
            Features (indices or names) that counterfactuals never change. A one-hot categorical variable
            whose columns are named ``'variable=category'`` may be named by its variable (``'sex'``).
        monotone
            ``{feature: 'increasing' | 'decreasing'}`` (or ``+1`` / ``-1``): features that may only move one way.
        cat_vars
            alibi's categorical map ``{first_column: n_categories}``. With ``ohe=True`` each entry is a
            one-hot group that always stays an exact one-hot vector; with ``ohe=False`` each entry is a
            single column of integer codes ``0 .. n_categories - 1`` that stays on that grid.
        ohe
            Whether ``cat_vars`` are one-hot encoded.
        category_map
            alibi's tabular convention (as ``CounterfactualRLTabular`` and ``AnchorTabular`` take it):
            ``{column: [category names]}`` for an array whose categorical columns hold the codes
            ``0 .. k - 1``; the counterfactuals are arrays of the same form. With a DataFrame, ``{column: [values]}``
            declares a column categorical with those categories (string and pandas categorical columns are
            categorical anyway, with the categories of the fit data). Columns by index or name. The generator
            works on a one-hot encoding of the categories, which stays internal (see :mod:`alibi_countergan.table`).
        ordinal_features
            Features whose counterfactual values must stay on a grid: a list of features (the grid is
            the set of values seen in the fit data, e.g. counts and ages) or ``{feature: grid}``.
        continuous_features
            For a table: numeric columns whose fit values are all whole but that may take any value. Every
            other integer column (an integer dtype, or whole values only) stays whole in every counterfactual,
            within its observed range, and a bool column stays bool.
        category_cost
            What switching the category of a one-hot categorical variable costs, in the units of a numeric
            change of one standard deviation of the fit data: one positive number for every categorical
            variable, or ``{variable: cost}`` (by its variable name or any of its columns; the others cost 1).
            Training and the refinement both minimise this cost, so a higher cost makes counterfactuals
            prefer numeric changes to switching that category. A category that must never change belongs in
            ``immutable_features`` instead.
        random_mask_rate
            Share of training rows that also get a random subset of their mutable features frozen, so
            that the generator learns to act through the others when ``explain(...,
            immutable_features=...)`` freezes features for one request. None: 0.5 for feature vectors
            and 0 for images. 0 trains only with the constructor's constraints.
        train_steps
            Training iterations; each runs ``discriminator_steps`` then ``generator_steps`` updates.
        batch_size
            Instances per update.
        discriminator_steps, generator_steps
            Updates of each network per iteration.
        learning_rate
            Adam learning rate of the generator.
        discriminator_learning_rate
            Adam learning rate of the discriminator; None uses ``learning_rate``.
        classifier_weight
            Weight of ``-log C_t(x_cf)`` in the generator's loss (white-box only).
        l1_weight, l2_weight
            Weights of the mean absolute and mean squared residual, in units of each feature's
            spread in the fit data (sparsity and proximity of the changes).
        min_change
            Smallest change kept, in units of each feature's spread: smaller changes are dropped, so
            counterfactuals change few features exactly (0 keeps every change).
        real_weight_power
            Black-box only: the discriminator's real data are weighted by ``C_t(x) ** real_weight_power``.
            1 is the paper's equation 5; larger values concentrate the target density on instances the
            classifier is sure about, which raises validity (``inf``: only instances predicted as ``t``).
        weight_averaging
            Share of the final training iterations over which the generator's weights are averaged
            (Polyak averaging, which steadies the GAN's oscillations); 0 keeps the last weights. Not
            applied when a callback stops training early.
        residual
            True for CounteRGAN. False trains the paper's plain "GAN" baseline, whose generator
            (the default or ``generator``) outputs the whole counterfactual in standardised units, still
            projected onto the constraints (an ablation, not for production use; the backend wraps the
            network, see :class:`~alibi_countergan.backends.base.NetworkSpec`).
        generator, discriminator
            Networks of the backend's framework replacing the defaults; both take flat features
            (see :mod:`alibi_countergan.value` for their signatures).
        data_format
            For 3-D instances: ``'channels_last'`` or ``'channels_first'``; None infers it.
        seed
            Seed of the network initialisation and of the batch and target sampling: the same seed
            on the same machine gives the same generator.
        n_threads
            Intra-op threads of the backend's framework during :meth:`fit` and :meth:`explain`; the
            previous setting is restored when the call returns or raises. The default, 1, suits
            networks this small: a second thread gains little on a quiet machine and slows training
            many times over when other processes share the cores. None leaves the framework's
            setting alone. PyTorch only: TensorFlow fixes its thread pools when its runtime starts,
            so with the TensorFlow backend set ``TF_NUM_INTRAOP_THREADS`` before starting Python
            instead (see :mod:`alibi_countergan.threads`).
        callbacks
            Called after every training iteration (see :class:`alibi_countergan.callbacks.Callback`).
        verbose
            Show a progress bar with the losses during ``fit``.
        """
        arguments = locals()
        values = {name: arguments[name] for name in CounteRGANConfig.names()}
        check_predictor(predictor)
        values["backend"] = resolve_backend(backend, predictor)
        config = CounteRGANConfig(**values)
        self._setup(predictor, config, resolve_white_box(config.method, predictor, config.backend))

    # ------------------------------------------------------------------------------------------
    # configuration
    # ------------------------------------------------------------------------------------------

    def _setup(self, predictor: Any, config: CounteRGANConfig, white_box: bool) -> None:
        """Set the checked parameters and the training mode; the one path of ``__init__`` and :meth:`from_config`."""
        super().__init__(meta=copy.deepcopy(DEFAULT_META))
        self.predictor = predictor
        self.config = config
        self.white_box = white_box
        self._fitted: Optional[FittedState] = None
        self._describe()

    def _describe(self) -> None:
        """Write the training mode and the parameters into ``meta`` (``n_classes``, once fitted, stays)."""
        self.meta["type"] = ["whitebox" if self.white_box else "blackbox", self.config.backend]
        self.meta["params"].update(self.config.to_meta(self.white_box))
        self._mirror_meta()

    def _mirror_meta(self) -> None:
        """Expose the metadata's keys as attributes (``explainer.type``), as alibi's ``Base`` does when made."""
        mirror_meta(self)

    def set_params(self, **params: Any) -> "CounteRGAN":
        """Change parameters, checked as the constructor checks them (assigning an attribute calls this).

        The change applies from the next :meth:`fit` (``seed``, ``train_steps``, the constraints...) or
        :meth:`explain` (``target_class``, ``refine``...); a fitted explainer keeps its networks.

        Parameters
        ----------
        **params
            New values by parameter name (the constructor's keyword arguments).

        Returns
        -------
        self
            The explainer.

        Raises
        ------
        ValueError
            For an invalid value or an unknown name; the explainer is then left unchanged.
        """
        config = self.config.evolve(**params)
        white_box = self.white_box
        if {"method", "backend"} & set(params):
            white_box = resolve_white_box(config.method, self.predictor, config.backend)
        self.config, self.white_box = config, white_box
        self._describe()
        return self

    @classmethod
    def from_config(cls, config: Mapping[str, Any], predictor: Any, *, generator: Any = None,
                    discriminator: Any = None) -> "CounteRGAN":
        """Rebuild a fitted explainer from the configuration of a save, before its weights are loaded.

        This is how :func:`alibi_countergan.saving.load` (behind ``CounteRGAN.load`` and
        ``alibi.saving.load_explainer``) rebuilds a saved explainer; it then reads the networks' weights
        into ``backend_``. The explainer returned here has the saved parameters, training mode, feature
        statistics, number of classes, metadata and training history, and networks of the saved
        architectures with fresh weights.

        Parameters
        ----------
        config
            The save's ``countergan.json``, as :func:`alibi_countergan.saving.read_config` returns it.
        predictor
            The classifier. An explainer trained white-box needs a model of its backend's framework;
            one trained black-box takes any callable returning class probabilities.
        generator, discriminator
            Only for an explainer trained with custom networks: new instances of the same architectures.

        Returns
        -------
        explainer
            The explainer, with the networks' weights still to be set.

        Raises
        ------
        ValueError
            When the predictor or the networks do not fit the saved explainer, or a parameter is invalid.
        """
        _check_custom_networks(config.get("custom_networks", {}), generator, discriminator)
        params = CounteRGANConfig.from_json(config["params"], generator=generator, discriminator=discriminator)
        white_box = bool(config["white_box"])
        check_predictor(predictor, params.backend, white_box=white_box, trained=True)
        explainer = cls.__new__(cls)
        explainer._setup(predictor, params, white_box)
        table = TableSchema.from_config(from_json_value(config["table"])) if config.get("table") else None
        core = params if table is None else encoded_config(params, table)
        explainer._fitted = explainer._build_state(FeatureSpace.from_config(from_json_value(config["space"])),
                                                   int(config["n_classes"]), core, table,
                                                   history=from_json_value(config.get("history", [])))
        meta = from_json_value(config["meta"])
        meta["params"].setdefault("n_threads", params.n_threads)  # saves made before n_threads existed
        explainer.meta = meta
        explainer._mirror_meta()
        return explainer

    @property
    def feature_shape(self) -> Tuple[int, ...]:
        """Shape of one instance, without alibi's batch axis."""
        return self.config.feature_shape

    @property
    def n_features(self) -> int:
        """Number of (flattened) features of one instance."""
        return self.config.n_features

    @property
    def image(self) -> Optional[ImageLayout]:
        """The image layout of the instances, or None for feature vectors."""
        return self.config.image

    # ------------------------------------------------------------------------------------------
    # predictor access
    # ------------------------------------------------------------------------------------------

    def _predict(self, x: np.ndarray, n_classes: Optional[int], schema: Optional[TableSchema],
                 fitted: Optional[Backend] = None) -> np.ndarray:
        """The predictor's checked probabilities (:func:`alibi_countergan.inference.predict_proba`); ``fitted``: the
        fitted backend, which calls a model of its framework."""
        framework = framework_of(self.predictor)
        backend = self._framework_backend(framework, fitted) if framework is not None else None
        return predict_proba(self.predictor, x, n_classes, schema, backend)

    def _inference(self, state: FittedState) -> Inference:
        """The machinery of one call on a fitted state (:class:`alibi_countergan.inference.Inference`)."""
        shape = (-1,) + state.encoded.feature_shape

        def predict(rows: np.ndarray) -> np.ndarray:
            return self._predict(rows.reshape(shape), state.n_classes, state.table, state.backend)

        return Inference(state, predict)

    def _framework_backend(self, framework: str, fitted: Optional[Backend]) -> Backend:
        if fitted is not None and fitted.name == framework:
            return fitted
        cached: Optional[Backend] = getattr(self, "_predict_backend", None)
        if cached is None or cached.name != framework:
            cached = load_backend(framework)
            self._predict_backend = cached
        return cached

    # ------------------------------------------------------------------------------------------
    # fit
    # ------------------------------------------------------------------------------------------

    def _state(self) -> FittedState:
        """The fitted state (read once per call by whoever needs it): the one check of "fitted"."""
        state = self._fitted
        if state is None:
            raise RuntimeError("This CounteRGAN explainer is not fitted yet: call fit(X) before explain().")
        return state

    def _fitted_attribute(self, name: str) -> Any:
        state = self._fitted
        if state is None:  # AttributeError, so that hasattr(explainer, "backend_") tells whether it is fitted
            raise AttributeError(f"{name} is learnt by fit: this CounteRGAN explainer is not fitted yet.")
        return state

    @property
    def backend_(self) -> Backend:
        """The backend holding the trained networks."""
        return self._fitted_attribute("backend_").backend

    @property
    def space_(self) -> FeatureSpace:
        """The feature space: the fit data's statistics combined with the constraints."""
        return self._fitted_attribute("space_").space

    @property
    def n_classes_(self) -> int:
        """The predictor's number of classes."""
        return self._fitted_attribute("n_classes_").n_classes

    @property
    def table_(self) -> Optional[TableSchema]:
        """The schema of the table fitted on, or None for arrays (see :mod:`alibi_countergan.table`)."""
        return self._fitted_attribute("table_").table

    @property
    def encoded_config_(self) -> CounteRGANConfig:
        """The parameters translated to the generator's encoded features (:attr:`config` without a table)."""
        return self._fitted_attribute("encoded_config_").encoded

    @property
    def history_(self) -> List[Dict[str, float]]:
        """The training losses, one dict per iteration."""
        return self._fitted_attribute("history_").history

    @fit_thread_policy
    def fit(self, X: np.ndarray, y: Optional[np.ndarray] = None) -> "CounteRGAN":
        """Train the generator (and discriminator) on data ``X``.

        Parameters
        ----------
        X
            Training instances, shape ``(n,) + shape[1:]``; not modified.
        y
            Ignored: the predictor's own predictions decide the targets. Accepted for
            scikit-learn style pipelines.

        Returns
        -------
        self
            The fitted explainer.

        Raises
        ------
        ValueError
            For invalid data or a predictor that does not return probabilities.
        TrainingDivergedError
            When a loss becomes NaN or infinite (lower the learning rate).
        """
        table = self._fit_table(X)
        core = self.config if table is None else encoded_config(self.config, table)
        if table is not None:
            self._check_table_predictor(table)
        x_batch = (as_instances(X, core.feature_shape, "X")[0] if table is None
                   else table.read(X, "X")[0].astype(np.float32))
        check_fit_scale(x_batch, core.feature_names)
        if len(x_batch) < 2:
            raise ValueError("fit needs at least two instances.")
        x32 = x_batch.astype(np.float32, copy=False)
        proba = self._predict(x32, None, table)
        n_classes = proba.shape[1]
        flat = x32.reshape(len(x32), -1)
        space = self._feature_space(flat, core)
        # The new networks are built and trained aside, on a shallow copy that the callbacks see (it
        # explains with the generator as it is at each step); this explainer keeps its previous state,
        # so other threads' explain calls see it until the trained state is swapped in below.
        state = self._build_state(space, n_classes, core, table)
        trainee = copy.copy(self)
        trainee.meta = copy.deepcopy(self.meta)
        trainee.meta["params"]["n_classes"] = n_classes
        trainee._fitted = state
        rng = np.random.default_rng(self.seed)
        x_std = space.network_inputs(flat)
        mask_rate = self.random_mask_rate if self.random_mask_rate is not None else (
            0.0 if core.image is not None else 0.5)
        sampler = BatchSampler(flat, x_std, proba, space, self.white_box, self.batch_size, rng,
                               random_mask_rate=mask_rate, real_weight_power=self.real_weight_power)
        # TrainingDivergedError leaves this explainer as it was (fitted or not)
        train_networks(trainee, state, sampler, functools.partial(trainee._with_cost_weights, state))
        self._fitted = state  # one assignment: explain sees the old state or the new one
        self.meta["params"]["n_classes"] = n_classes
        return self

    def _fit_table(self, X: Any) -> Optional[TableSchema]:
        """The schema of a table passed to :meth:`fit` (a DataFrame, or an array with ``category_map``), else None."""
        if is_table(X):
            return TableSchema.from_frame(as_frame(X), self.category_map, self.continuous_features, self.feature_names)
        if self.category_map is None and not self.continuous_features:
            return None
        arr, _ = as_instances(X, self.feature_shape, "X")
        if arr.ndim != 2:
            raise ValueError(f"category_map describes the columns of a table; X has shape {arr.shape}.")
        return TableSchema.from_codes(arr.astype(np.float64), self.category_map or {}, self.feature_names,
                                      self.continuous_features)

    def _check_table_predictor(self, table: TableSchema) -> None:
        """A model of the backend's framework takes arrays: it cannot be trained through, or called on, a
        DataFrame's categorical columns."""
        if framework_of(self.predictor) is None or not table.has_categories:
            return
        if self.white_box:
            raise ValueError("method='white-box' trains through the model's gradients with respect to its input, and "
                             "a table's categorical columns have none: pass method='black-box' (the model is then "
                             "called on the table's own form), or fit on the one-hot array with cat_vars.")
        if table.form == FRAME:
            raise ValueError(f"The predictor is a {framework_of(self.predictor)} model, which takes arrays, but X is a "
                             f"DataFrame with categorical columns; wrap the model in a function that encodes the "
                             f"DataFrame, or fit on the one-hot array with cat_vars.")

    def _feature_space(self, flat: np.ndarray, core: CounteRGANConfig) -> FeatureSpace:
        """The fit data's statistics combined with the constraints, for flat float32 fit data."""
        constraints = core.constraints
        check_onehot(flat, constraints.groups, "X")
        image = core.image
        return build_feature_space(
            flat, channel_index=image.channel_index() if image is not None else None,
            feature_shape=core.feature_shape, feature_range=core.feature_range, immutable=constraints.immutable,
            monotone=constraints.monotone, groups=constraints.groups, grids=constraints.fit_grids(flat),
            min_change=self.min_change, category_costs=constraints.category_costs)

    def _build_state(self, space: FeatureSpace, n_classes: int, core: CounteRGANConfig, table: Optional[TableSchema],
                     history: Optional[List[Dict[str, float]]] = None) -> FittedState:
        """A new fitted state for a feature space: the backend with its networks built (not trained)."""
        backend = load_backend(self.backend)
        network = NetworkSpec(feature_shape=core.feature_shape, n_classes=n_classes,
                              discriminator_outputs=1 if self.white_box else n_classes, image=core.image,
                              plain_gan=not self.residual)
        training = TrainingSpec(
            space=space, weights=LossWeights(self.classifier_weight, self.l1_weight, self.l2_weight,
                                             target_proba=self._training_proba()),
            white_box=self.white_box, learning_rate_generator=self.learning_rate,
            learning_rate_discriminator=self.discriminator_learning_rate or self.learning_rate, beta_1=0.5)
        backend.build(network, training, self.predictor if self.white_box else None, self.seed,
                      generator=self.generator, discriminator=self.discriminator)
        return FittedState(backend=backend, space=space, n_classes=n_classes, table=table, encoded=core,
                           history=list(history or []))

    def _training_proba(self) -> float:
        """The target probability training aims for: a fifth further from certainty than explain requires
        (0.6 for the default criterion, just past 0.5), so the refinement has room to shrink."""
        required = 0.5 if self.target_proba is None else self.target_proba
        return 1.0 - 0.8 * (1.0 - required)

    def _with_cost_weights(self, state: FittedState, batch: Batch) -> Batch:
        """The batch with ``cost_weights`` 1 for the rows whose current counterfactual reaches the training
        target probability: only those pay the cost of their change (see :mod:`alibi_countergan.value`).
        One forward pass of the generator and one predictor call, so black-box training gets it too."""
        inference = self._inference(state)
        cf = inference.counterfactuals(batch.x, batch.target, batch.mask)
        finite = np.flatnonzero(np.all(np.isfinite(cf), axis=1))  # a diverged generator is reported by the step
        reached = np.zeros(len(cf), dtype=np.float32)
        if finite.size:
            proba = inference.predict(cf[finite])
            reached[finite] = proba[np.arange(finite.size), batch.target[finite]] >= self._training_proba()
        return dataclasses.replace(batch, cost_weights=reached)

    # ------------------------------------------------------------------------------------------
    # explain
    # ------------------------------------------------------------------------------------------

    @thread_policy
    def explain(self, X: np.ndarray, target_class: Optional[TargetClass] = None,
                immutable_features: Sequence[FeatureKey] = (), *, refine: Optional[bool] = None,
                target_proba: Optional[float] = None, n_counterfactuals: int = 1) -> Explanation:
        """Counterfactuals for one instance or a batch: one forward pass of the generator, then a refinement.

        Parameters
        ----------
        X
            One instance (shape ``shape[1:]`` or ``(1,) + shape[1:]``) or a batch ``(n,) + shape[1:]``;
            not modified.
        target_class
            A class index, a list with one entry for all instances or one per instance, ``'other'``
            (any class but the predicted one: the one whose counterfactual the predictor rates
            highest), or None for the constructor's ``target_class``.
        immutable_features
            Features (indices or names) frozen for this request only, on top of the constructor's
            constraints; a categorical group freezes as a whole. Freezing every feature returns the
            inputs unchanged (``success`` is then False unless an input already has the target class).
        refine
            Whether to refine the generator's output (repair rows that miss their target, revert the
            changes the target does not need and shrink the rest; see :mod:`alibi_countergan.refine`);
            None uses the constructor's ``refine``. The refinement calls the predictor once for a tabular
            row or a small batch in the common case, a few times for larger ones (for the whole batch at
            once), never once per row.
        target_proba
            When a counterfactual reaches its target, for this request; None uses the constructor's.
        n_counterfactuals
            Up to this many different counterfactuals per instance (see :mod:`alibi_countergan.diverse`):
            for each variable the first counterfactual changes, another one that leaves it alone. With more
            than 1, ``cf`` holds the cheapest valid one and ``counterfactuals`` all of them, ranked by cost,
            with their diversity. 1 (default) keeps CFProto's layout and costs nothing more.

        Returns
        -------
        explanation
            An :class:`alibi.api.interfaces.Explanation` with the data of alibi's CounterfactualProto:
            ``cf`` (``X``, ``class``, ``proba``), ``orig_class``, ``orig_proba``; and ``target``,
            ``success`` (the predictor's class is the target and, with a ``target_proba``, the target's
            probability is at least that) and ``residual`` (``cf['X'] - X``).
            For one instance the types are CFProto's (``cf['X']`` of shape ``(1,) + shape[1:]``, numpy
            integer classes, ``(1, n_classes)`` probabilities, a bool ``success``); for a batch every
            entry has a leading batch axis. An instance the predictor already assigns to its target
            class is returned unchanged, with ``success`` True. A row whose counterfactual misses its
            target (even after the refinement's repair) has ``success`` False: its ``cf`` entries then hold
            the closest attempt, not a recourse. With ``n_counterfactuals > 1``, ``counterfactuals`` holds,
            per instance (a list of them for a batch), a dict with the ranked counterfactuals' ``X``
            (``(k,) + shape[1:]``), ``class``, ``proba``, ``cost`` (L1 in units of each feature's spread
            plus the category cost of each changed category, 1 by default), ``valid``, ``changed`` (the
            variables each one changes), and their diversity: ``mean_pairwise_distance`` (mean cost between
            two of them) and ``features_used``.

        Raises
        ------
        RuntimeError
            Before ``fit``.
        ValueError
            For invalid instances or targets.
        """
        state = self._state()  # read once: a concurrent fit swaps in a new state, never changes this one
        refine = self.refine if refine is None else check_bool("refine", refine)
        n_counterfactuals = check_int("n_counterfactuals", n_counterfactuals, 1)
        criterion = Criterion(self.target_proba if target_proba is None else check_target_proba(target_proba))
        return self._inference(state).explain(X, self.target_class if target_class is None else target_class,
                                              immutable_features, refine, criterion, n_counterfactuals, self.meta)

    def reset_predictor(self, predictor: Any) -> None:
        """Replace the predictor (for example after loading a saved explainer).

        Parameters
        ----------
        predictor
            The new predictor. In white-box mode it must be a model of the backend's framework.
        """
        check_predictor(predictor, self.backend, white_box=self.white_box, trained=True)
        self.predictor = predictor
        if self._fitted is not None and self.white_box:
            self._fitted.backend.set_predictor(predictor)


def _check_custom_networks(saved: Mapping[str, Optional[str]], generator: Any, discriminator: Any) -> None:
    """Networks are given again at load time exactly when the saved explainer had custom ones."""
    for what, given in (("generator", generator), ("discriminator", discriminator)):
        custom = saved.get(what)
        if custom is not None and given is None:
            raise ValueError(f"This CounteRGAN was trained with a custom {what} ({custom}): load it with "
                             f"alibi_countergan.saving.load(path, predictor, {what}=...) and a new instance of that "
                             f"network.")
        if custom is None and given is not None:
            raise ValueError(f"This CounteRGAN was trained with the default {what}; do not pass one.")
