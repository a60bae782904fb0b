"""The parameters of a CounteRGAN explainer, checked once, and the checks of its predictor.

:class:`CounteRGANConfig` holds every parameter of :class:`~alibi_countergan.explainer.CounteRGAN`
but the predictor. Each field converts and checks its value when the object is made (and when
:meth:`CounteRGANConfig.evolve` makes a changed copy); the checks that involve several fields run
after them. The same fields render both the explainer's ``meta["params"]`` (:meth:`~CounteRGANConfig.to_meta`,
plain JSON for reading) and the parameters of a save file (:meth:`~CounteRGANConfig.to_json`, lossless,
read back by :meth:`~CounteRGANConfig.from_json`), both through :mod:`alibi_countergan.jsonvalue`.

The explainer exposes each parameter as an attribute, as scikit-learn estimators do
(:class:`Parameter`); assigning one checks it again.
"""

from typing import Any, Callable, Dict, Generic, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union, overload

import attrs
import numpy as np

from alibi_countergan.backends import framework_of, resolve_backend
from alibi_countergan.callbacks import Callback
from alibi_countergan.checks import (
    check_bool,
    check_int,
    check_number,
    check_target_proba,
    describe_callable,
    normalise_shape,
)
from alibi_countergan.features import FeatureKey, UserConstraints, parse_constraints
from alibi_countergan.jsonvalue import from_json_value, plain_json_value, to_json_value
from alibi_countergan.layout import ImageLayout, detect_layout
from alibi_countergan.targets import OTHER, TargetClass, check_target_spec
from alibi_countergan.threads import check_n_threads
from alibi_countergan.version import __version__

METHODS = ("auto", "white-box", "black-box")
"""The values of ``method``."""

Check = Callable[[str, Any], Any]
"""A field's check: ``(parameter name, value) -> the value to store``, raising ValueError for a bad value."""

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# checks of single parameters: (name, value) -> stored value
# ---------------------------------------------------------------------------------------------


def _integer(minimum: int) -> Check:
    return lambda name, value: check_int(name, value, minimum)


def _number(*, positive: bool = False, allow_inf: bool = False, at_most_one: bool = False) -> Check:
    def check(name: str, value: Any) -> float:
        number = check_number(name, value, positive=positive, allow_inf=allow_inf)
        if at_most_one and number > 1:
            raise ValueError(f"{name} must be between 0 and 1, got {value!r}.")
        return number

    return check


def _category_cost(name: str, value: Any) -> Union[float, Dict[FeatureKey, float]]:
    """One positive cost for every categorical variable, or ``{variable: positive cost}`` (the others cost 1)."""
    if isinstance(value, Mapping):
        return {key: check_number(f"{name}[{key!r}]", cost, positive=True) for key, cost in value.items()}
    return check_number(name, value, positive=True)


def _optional(check: Check, *, keep: bool = False) -> Check:
    """None, or a value passing ``check``; with ``keep`` the value is stored as given, not as converted."""

    def optional(name: str, value: Any) -> Any:
        if value is None:
            return None
        checked = check(name, value)
        return value if keep else checked

    return optional


def _shape(name: str, value: Any) -> Any:
    normalise_shape(value)
    return tuple(value) if isinstance(value, (tuple, list)) else value


def _backend(name: str, value: Any) -> str:
    return resolve_backend(value, None)


def _method(name: str, value: Any) -> str:
    if value not in METHODS:
        raise ValueError(f"method={value!r} is not one of {list(METHODS)}.")
    return str(value)


def _target_class(name: str, value: Any) -> Any:
    check_target_spec(value)
    return value


def _feature_range(name: str, value: Any) -> Any:
    if value is not None and (not isinstance(value, (tuple, list)) or len(value) != 2):
        raise ValueError("feature_range must be a (lower, upper) pair of scalars or arrays.")
    return value


def _names(name: str, value: Any) -> Optional[List[str]]:
    return None if value is None else list(value)


def _as_list(name: str, value: Any) -> List[Any]:
    return list(value)


def _as_dict(name: str, value: Any) -> Dict[Any, Any]:
    return dict(value) if value else {}


def _cat_vars(name: str, value: Any) -> Dict[int, int]:
    return {int(k): int(v) for k, v in value.items()} if value else {}


def _category_map(name: str, value: Any) -> Optional[Dict[FeatureKey, List[Any]]]:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must map columns (index or name) to their lists of categories, got {value!r}.")
    out: Dict[FeatureKey, List[Any]] = {}
    for key, categories in value.items():
        if isinstance(categories, (str, bytes)) or not isinstance(categories, Sequence) and not hasattr(
                categories, "__array__"):
            raise ValueError(f"{name}[{key!r}] must be a list of categories, got {categories!r}.")
        out[int(key) if isinstance(key, np.integer) else key] = [
            v.item() if isinstance(v, np.generic) else v for v in categories]
    return out


def _data_format(name: str, value: Any) -> Optional[str]:
    if value not in (None, "channels_last", "channels_first"):
        raise ValueError(f"{name}={value!r}: use 'channels_last', 'channels_first' or None.")
    return value


def _threads(name: str, value: Any) -> Optional[int]:
    return check_n_threads(value)


def _callbacks(name: str, value: Any) -> List[Callback]:
    callbacks = list(value)
    for cb in callbacks:
        if not callable(cb):
            raise ValueError(f"callbacks must be callables, got {type(cb).__name__}.")
    return callbacks


def _param(default: Any, check: Optional[Check] = None, *, obj: bool = False) -> Any:
    """A parameter field: ``check`` converts and checks its value; ``obj`` marks an object, not configuration
    (networks, callbacks), which saves leave out and ``meta`` names by its class."""
    return attrs.field(default=default, metadata={"check": check, "object": obj})


def _bind_checks(cls: type, fields: List["attrs.Attribute[Any]"]) -> List["attrs.Attribute[Any]"]:
    """attrs field transformer: each field's check becomes its converter, called with the field's name."""
    bound = []
    for f in fields:
        check = f.metadata.get("check")
        bound.append(f.evolve(converter=_named(f.name, check)) if check is not None else f)
    return bound


def _named(name: str, check: Check) -> Callable[[Any], Any]:
    return lambda value: check(name, value)


def _name_of(obj: Any) -> Optional[str]:
    return None if obj is None else getattr(obj, "__name__", type(obj).__name__)


# ---------------------------------------------------------------------------------------------
# the parameters object
# ---------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, eq=False, field_transformer=_bind_checks)
class CounteRGANConfig:
    """Every parameter of :class:`~alibi_countergan.explainer.CounteRGAN` but the predictor, checked.

    The fields are the constructor's keyword arguments, with the same defaults and meanings (see
    :class:`~alibi_countergan.explainer.CounteRGAN`), stored as the explainer's attributes hold them:
    ``backend`` by its canonical name, ``cat_vars`` and ``monotone`` as dicts, ``immutable_features``,
    ``feature_names`` and ``callbacks`` as lists, numbers as floats and ints; the other values as given.

    Raises
    ------
    ValueError
        When made with an invalid parameter, naming it.
    """

    shape: Tuple[int, ...] = _param(attrs.NOTHING, _shape)
    backend: str = _param(None, _backend)
    method: str = _param("auto", _method)
    target_class: TargetClass = _param(OTHER, _target_class)
    target_proba: Optional[float] = _param(None, lambda name, value: check_target_proba(value))
    refine: bool = _param(True, check_bool)
    feature_range: Optional[Tuple[Any, Any]] = _param(None, _feature_range)
    feature_names: Optional[List[str]] = _param(None, _names)
    immutable_features: List[FeatureKey] = _param((), _as_list)
    monotone: Dict[FeatureKey, Union[str, int]] = _param(None, _as_dict)
    cat_vars: Dict[int, int] = _param(None, _cat_vars)
    ohe: bool = _param(True, check_bool)
    category_map: Optional[Dict[FeatureKey, List[Any]]] = _param(None, _category_map)
    ordinal_features: Union[Sequence[FeatureKey], Mapping[FeatureKey, Sequence[float]], None] = _param(None)
    continuous_features: List[FeatureKey] = _param((), _as_list)
    category_cost: Union[float, Dict[FeatureKey, float]] = _param(1.0, _category_cost)
    random_mask_rate: Optional[float] = _param(None, _optional(_number(at_most_one=True), keep=True))
    train_steps: int = _param(1000, _integer(1))
    batch_size: int = _param(256, _integer(2))
    discriminator_steps: int = _param(1, _integer(1))
    generator_steps: int = _param(2, _integer(1))
    learning_rate: float = _param(1e-3, _number(positive=True))
    discriminator_learning_rate: Optional[float] = _param(None, _optional(_number(positive=True)))
    classifier_weight: float = _param(10.0, _number())
    l1_weight: float = _param(0.1, _number())
    l2_weight: float = _param(0.0, _number())
    min_change: float = _param(0.1, _number())
    real_weight_power: float = _param(4.0, _number(positive=True, allow_inf=True))
    weight_averaging: float = _param(0.25, _number(at_most_one=True))
    residual: bool = _param(True, check_bool)
    generator: Any = _param(None, obj=True)
    discriminator: Any = _param(None, obj=True)
    data_format: Optional[str] = _param(None, _data_format)
    seed: int = _param(0, _integer(0))
    n_threads: Optional[int] = _param(1, _threads)
    callbacks: List[Callback] = _param((), _callbacks, obj=True)
    verbose: bool = _param(True, check_bool)

    _feature_shape: Tuple[int, ...] = attrs.field(init=False, repr=False)
    _constraints: Optional[UserConstraints] = attrs.field(init=False, repr=False)
    _image: Optional[ImageLayout] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        """The checks that involve several parameters; their results are kept (see the properties)."""
        feature_shape = normalise_shape(self.shape)
        n_features = int(np.prod(feature_shape))
        if self.feature_names is not None and len(self.feature_names) != n_features:
            raise ValueError(f"feature_names has {len(self.feature_names)} names for {n_features} features.")
        if (self.category_map is not None or self.continuous_features) and len(feature_shape) != 1:
            raise ValueError(f"category_map and continuous_features describe the columns of a table; instances of "
                             f"shape {feature_shape} are not rows of one.")
        # A table's columns are known from the data passed to fit (a DataFrame, or alibi's label-encoded array
        # with category_map): its constraints are resolved then, in the encoded columns (table.encoded_config).
        constraints = None if self.deferred else self._parse_constraints(n_features)
        image = None
        if self.generator is None or self.discriminator is None or len(feature_shape) in (2, 3):
            image = detect_layout(feature_shape, self.data_format)
        object.__setattr__(self, "_feature_shape", feature_shape)
        object.__setattr__(self, "_constraints", constraints)
        object.__setattr__(self, "_image", image)

    @property
    def feature_shape(self) -> Tuple[int, ...]:
        """Shape of one instance, without alibi's batch axis."""
        return self._feature_shape

    @property
    def n_features(self) -> int:
        """Number of (flattened) features of one instance."""
        return int(np.prod(self._feature_shape))

    @property
    def deferred(self) -> bool:
        """Whether the columns are only known from the fit data: ``category_map`` is given, or features are
        named without ``feature_names`` (a DataFrame's columns name them)."""
        if self.category_map is not None or self.continuous_features:
            return True
        if self.feature_names is not None:
            return False
        named = list(self.immutable_features) + list(self.monotone)
        named += list(self.ordinal_features or [])
        named += list(self.category_cost) if isinstance(self.category_cost, Mapping) else []
        return any(isinstance(k, str) for k in named)

    def _parse_constraints(self, n_features: int) -> UserConstraints:
        return parse_constraints(n_features, self.feature_names, self.cat_vars, self.ohe, self.immutable_features,
                                 self.monotone, self.ordinal_features, self.category_cost)

    @property
    def constraints(self) -> UserConstraints:
        """The constraint parameters resolved to column indices.

        Raises
        ------
        ValueError
            For the parameters of a table (:attr:`deferred`), which only the fit data resolve: features named
            without ``feature_names``, or the columns of ``category_map``.
        """
        if self._constraints is None:
            if self.category_map is not None or self.continuous_features:
                raise ValueError("category_map and continuous_features describe a table's columns; the encoded "
                                 "features of the table are what the generator sees (table.encoded_config).")
            return self._parse_constraints(self.n_features)  # raises: names without feature_names
        return self._constraints

    @property
    def image(self) -> Optional[ImageLayout]:
        """The image layout of the instances, or None for feature vectors (or custom networks of other shapes)."""
        return self._image

    @classmethod
    def names(cls, saved: bool = False) -> List[str]:
        """The parameters' names, in the constructor's order; with ``saved`` only those a save holds (not the
        networks and callbacks)."""
        return [f.name for f in attrs.fields(cls) if f.init and not (saved and f.metadata["object"])]

    def evolve(self, **changes: Any) -> "CounteRGANConfig":
        """A copy with some parameters changed, checked as a new object is.

        Parameters
        ----------
        **changes
            New values by parameter name.

        Returns
        -------
        config
            The changed copy (this object is never modified).

        Raises
        ------
        ValueError
            For an invalid value, or a name that is not a parameter.
        """
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise ValueError(f"{unknown} are not parameters of CounteRGAN; its parameters are {self.names()}.")
        return attrs.evolve(self, **changes)

    def to_meta(self, white_box: bool) -> Dict[str, Any]:
        """The parameters as alibi's ``meta["params"]``: plain JSON, objects by their class names.

        Parameters
        ----------
        white_box
            Whether the explainer trains white-box (recorded with the parameters).

        Returns
        -------
        params
            ``{name: value}`` for every parameter, plus ``white_box`` and ``countergan_version``.
        """
        params: Dict[str, Any] = {}
        for f in attrs.fields(type(self)):
            if not f.init:
                continue
            value = getattr(self, f.name)
            if f.metadata["object"]:
                params[f.name] = [_name_of(v) for v in value] if isinstance(value, list) else _name_of(value)
            else:
                params[f.name] = plain_json_value(value)
        params["shape"] = list(self.feature_shape)  # the instance shape, with or without alibi's batch axis
        params["white_box"] = white_box
        params["countergan_version"] = __version__
        return params

    def to_json(self) -> Dict[str, Any]:
        """The parameters as a save file holds them: lossless JSON, without the objects (networks, callbacks).

        Returns
        -------
        params
            ``{name: JSON value}``; :meth:`from_json` turns it back into an equal configuration.

        Raises
        ------
        TypeError
            For a parameter value JSON cannot represent (naming it).
        """
        values = {name: getattr(self, name) for name in self.names(saved=True)}
        result: Dict[str, Any] = to_json_value(values, "params")
        return result

    @classmethod
    def from_json(cls, params: Mapping[str, Any], *, generator: Any = None,
                  discriminator: Any = None) -> "CounteRGANConfig":
        """Inverse of :meth:`to_json`; parameters a save lacks (it predates them) take their defaults.

        Parameters
        ----------
        params
            :meth:`to_json`'s output, after a JSON round trip.
        generator, discriminator
            The networks (objects are not saved); None for the defaults.

        Returns
        -------
        config
            The checked configuration.

        Raises
        ------
        ValueError
            For a name that is not a parameter of this version, or an invalid value.
        """
        values = from_json_value(dict(params))
        unknown = sorted(set(values) - set(cls.names(saved=True)))
        if unknown:
            raise ValueError(f"The saved parameters {unknown} are not parameters of this version of CounteRGAN "
                             f"({__version__}).")
        return cls(**values, generator=generator, discriminator=discriminator)

    def custom_networks(self) -> Dict[str, Optional[str]]:
        """The class names of the custom networks (None for a default network)."""
        return {"generator": _name_of(self.generator), "discriminator": _name_of(self.discriminator)}


class Parameter(Generic[T]):
    """A parameter read as an attribute of the explainer (as in scikit-learn), held by its ``config``.

    Reading ``explainer.train_steps`` reads ``explainer.config.train_steps``; assigning it calls
    ``explainer.set_params(train_steps=...)``, which checks the value as the constructor does.
    """

    name: str

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: Optional[type] = None) -> "Parameter[T]":
        ...

    @overload
    def __get__(self, obj: Any, owner: Optional[type] = None) -> T:
        ...

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        return getattr(obj.config, self.name)

    def __set__(self, obj: Any, value: T) -> None:
        obj.set_params(**{self.name: value})


class ParameterAttributes:
    """Every parameter of :class:`CounteRGANConfig` as an attribute of the explainer (:class:`Parameter`), in the
    fields' order: the explainer inherits them (a test checks that they are exactly the config's fields)."""

    config: CounteRGANConfig

    shape = Parameter[Tuple[int, ...]]()
    backend = Parameter[str]()
    method = Parameter[str]()
    target_class = Parameter[TargetClass]()
    target_proba = Parameter[Optional[float]]()
    refine = Parameter[bool]()
    feature_range = Parameter[Optional[Tuple[Any, Any]]]()
    feature_names = Parameter[Optional[List[str]]]()
    immutable_features = Parameter[List[FeatureKey]]()
    monotone = Parameter[Dict[FeatureKey, Union[str, int]]]()
    cat_vars = Parameter[Dict[int, int]]()
    ohe = Parameter[bool]()
    category_map = Parameter[Optional[Dict[FeatureKey, List[Any]]]]()
    ordinal_features = Parameter[Union[Sequence[FeatureKey], Mapping[FeatureKey, Sequence[float]], None]]()
    continuous_features = Parameter[List[FeatureKey]]()
    category_cost = Parameter[Union[float, Dict[FeatureKey, float]]]()
    random_mask_rate = Parameter[Optional[float]]()
    train_steps = Parameter[int]()
    batch_size = Parameter[int]()
    discriminator_steps = Parameter[int]()
    generator_steps = Parameter[int]()
    learning_rate = Parameter[float]()
    discriminator_learning_rate = Parameter[Optional[float]]()
    classifier_weight = Parameter[float]()
    l1_weight = Parameter[float]()
    l2_weight = Parameter[float]()
    min_change = Parameter[float]()
    real_weight_power = Parameter[float]()
    weight_averaging = Parameter[float]()
    residual = Parameter[bool]()
    generator = Parameter[Any]()
    discriminator = Parameter[Any]()
    data_format = Parameter[Optional[str]]()
    seed = Parameter[int]()
    n_threads = Parameter[Optional[int]]()
    callbacks = Parameter[List[Callback]]()
    verbose = Parameter[bool]()


# ---------------------------------------------------------------------------------------------
# the predictor
# ---------------------------------------------------------------------------------------------


def check_predictor(predictor: Any, backend: Optional[str] = None, *, white_box: bool = False,
                    trained: bool = False) -> None:
    """The one check of a predictor: callable, and a model of the backend's framework for white-box training.

    Parameters
    ----------
    predictor
        The classifier.
    backend
        The explainer's backend (needed with ``white_box``).
    white_box
        Whether the explainer trains (or was trained) through the predictor's gradients; False checks only
        that the predictor is callable.
    trained
        True for an explainer already trained white-box (a loaded one, or a new predictor for a fitted
        one); False for ``method='white-box'`` in the constructor.

    Raises
    ------
    ValueError
        When the predictor is not callable, or not a model of the backend's framework where one is needed.
    """
    if not callable(predictor) and not callable(getattr(predictor, "predict_proba", None)):
        raise ValueError(f"predictor must be a model, a function returning class probabilities, or an estimator "
                         f"with predict_proba (a fitted scikit-learn Pipeline...), got {type(predictor).__name__}.")
    framework = framework_of(predictor)
    if not white_box or framework == backend:
        return
    expected = "a torch.nn.Module" if backend == "pytorch" else "a tf.keras.Model"
    got = f"a {framework} model" if framework else describe_callable(predictor)
    if trained:
        lead = (f"This CounteRGAN was trained white-box with the {backend} backend, so its predictor must be a "
                f"model of that framework")
        advice = ""
    else:
        lead = "method='white-box' needs the predictor's gradients"
        advice = " Use method='black-box' for a predictor that only maps numpy arrays to probabilities."
    raise ValueError(f"{lead}: with the {backend} backend the predictor must be {expected}, got {got}.{advice}")


def resolve_white_box(method: str, predictor: Any, backend: str) -> bool:
    """Whether an explainer trains white-box: as ``method`` asks, and for ``'auto'`` when it can.

    Parameters
    ----------
    method
        ``'auto'``, ``'white-box'`` or ``'black-box'``.
    predictor
        The classifier.
    backend
        The explainer's backend.

    Returns
    -------
    white_box
        True when training goes through the predictor's gradients.

    Raises
    ------
    ValueError
        For ``'white-box'`` with a predictor that is not a model of the backend's framework.
    """
    if method == "black-box":
        return False
    if method == "white-box":
        check_predictor(predictor, backend, white_box=True, trained=False)
        return True
    return framework_of(predictor) == backend
