"""Profiles (what a run computes), paths, and the data directory setting."""

import os
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
"""The repository's root (the folder holding ``benchmarks/``)."""

DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
"""Where the full profile looks for the full data files when neither ``--data-dir`` nor
``COUNTERGAN_DATA_DIR`` names a folder: ``shared/data`` beside the repository."""
SHIPPED_DATA_DIR = REPO / "data"
"""The repository's own data: the MNIST subset (COMPAS and Pima ship inside the package). The quick
profile reads only shipped data."""
DEFAULT_CACHE_DIR = REPO / "benchmarks" / "cache"
DEFAULT_RESULTS_DIR = REPO / "benchmarks" / "results"
FETCHED_MNIST = DEFAULT_CACHE_DIR / "mnist.npz"
"""Where the full MNIST arrays go when the full profile fetches them with Keras's loader."""

DATA_FILES = {
    "mnist": "mnist.npz",
    "compas": "compas-scores-two-years.csv",
    "pima": "pima-indians-diabetes.csv",
}
"""The file each data set is read from, inside a data directory holding the full files."""


def data_dir(cli_value: Optional[str] = None, profile_name: str = "full") -> Path:
    """The data directory of a run.

    The CLI flag when given; else, for the quick profile, :data:`SHIPPED_DATA_DIR` (the quick run
    reads nothing outside the repository and needs no network); else ``COUNTERGAN_DATA_DIR``,
    else :data:`DEFAULT_DATA_DIR` (which need not exist: see :func:`data_file`).
    """
    if cli_value:
        return Path(cli_value).expanduser().resolve()
    if profile_name == "quick":
        return SHIPPED_DATA_DIR.resolve()
    env = os.environ.get("COUNTERGAN_DATA_DIR")
    return Path(env).expanduser().resolve() if env else DEFAULT_DATA_DIR.resolve()


def shipped_file(dataset: str) -> Path:
    """The file of a data set that ships with the repository: the package's COMPAS and Pima tables, or
    the MNIST subset of :data:`SHIPPED_DATA_DIR` (5,000 training and 1,000 test images)."""
    if dataset == "mnist":
        return SHIPPED_DATA_DIR.resolve() / "mnist-subset.npz"
    if dataset not in DATA_FILES:
        raise ValueError(f"Unknown data set {dataset!r}; use one of {sorted(DATA_FILES)}.")
    name = {"compas": "compas.csv.gz", "pima": "pima.csv.gz"}[dataset]
    return Path(str(resources.files("alibi_countergan").joinpath("data", name)))


def data_file(directory: Path, dataset: str) -> Path:
    """The file a data set is read from, fetching full MNIST with Keras's loader when it is nowhere here.

    In :data:`SHIPPED_DATA_DIR`: the shipped file (:func:`shipped_file`). Elsewhere: the data
    directory's full file (:data:`DATA_FILES`) when it exists; for COMPAS and Pima otherwise the
    table shipped with the package (the same rows: ProPublica's filter applied to the full file
    gives the shipped table); for MNIST otherwise the arrays fetched earlier into
    :data:`FETCHED_MNIST`, or fetched now with ``tf.keras.datasets.mnist.load_data()`` (network).

    Raises
    ------
    FileNotFoundError
        When MNIST is not in the data directory and cannot be fetched, naming both ways to get it.
    """
    if dataset not in DATA_FILES:
        raise ValueError(f"Unknown data set {dataset!r}; use one of {sorted(DATA_FILES)}.")
    directory = Path(directory).resolve()
    if directory == SHIPPED_DATA_DIR.resolve():
        return shipped_file(dataset)
    path = directory / DATA_FILES[dataset]
    if path.is_file():
        return path
    if dataset != "mnist":
        return shipped_file(dataset)
    if FETCHED_MNIST.is_file():
        return FETCHED_MNIST
    return _fetch_mnist(path)


def _fetch_mnist(looked_at: Path) -> Path:
    """Full MNIST through ``tf.keras.datasets.mnist.load_data()``, written to :data:`FETCHED_MNIST`."""
    import numpy as np

    try:
        import tensorflow as tf

        (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    except Exception as err:  # no TensorFlow, no network, a broken download: all end the same way
        raise FileNotFoundError(
            f"The mnist benchmark needs the full MNIST file. It is not at {looked_at}, and fetching it with "
            f"tf.keras.datasets.mnist.load_data() failed ({type(err).__name__}: {err}). Either put the standard "
            f"mnist.npz in a folder and name it with --data-dir or the environment variable COUNTERGAN_DATA_DIR "
            f"(now: {os.environ.get('COUNTERGAN_DATA_DIR', 'unset')}; default: {DEFAULT_DATA_DIR}), or run where "
            f"TensorFlow is installed and the network is reachable, so that Keras downloads it (once, into "
            f"{FETCHED_MNIST}). The quick profile needs neither: it runs on the repository's subset.") from err
    FETCHED_MNIST.parent.mkdir(parents=True, exist_ok=True)
    tmp = FETCHED_MNIST.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    tmp.replace(FETCHED_MNIST)
    return FETCHED_MNIST


@dataclass(frozen=True)
class DatasetProfile:
    """How much of one data set a run uses.

    Attributes
    ----------
    classifier_epochs, autoencoder_epochs
        Training epochs of the target classifier and of the realism autoencoder.
    n_train
        Training rows used for the classifier, the autoencoder and CounteRGAN's fit (None: all).
    n_test
        Test rows explained by the GAN-based methods (None: all the rows the data set explains).
    n_baseline
        Rows explained by alibi's gradient searches (a random subset of the same rows).
    train_steps
        CounteRGAN's training iterations (None: the explainer's default).
    single_calls
        Warm single-instance ``explain`` calls whose median is the single-instance latency.
    cfrl_train_steps
        Training steps of alibi's ``CounterfactualRLTabular`` (None: CFRL does not run on this
        data set).
    cfrl_autoencoder_epochs
        Epochs of CFRL's own autoencoder (alibi's heterogeneous autoencoder).
    n_diverse
        Rows of the diversity comparison (``n_counterfactuals=3`` against DiCE): a random subset of the
        searches' rows (tabular data sets only).
    dice_sample_size
        DiCE-random's ``sample_size`` (its default: 1,000).
    dice_max_iterations
        DiCE-genetic's ``maxiterations`` (its default: 500).
    dice_row_limit_s
        Seconds a DiCE call may take on one row; a row that takes longer counts as returning nothing
        (DiCE-genetic's initialisation samples until it finds enough valid rows, without a limit).
    """

    classifier_epochs: int
    autoencoder_epochs: int
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    n_baseline: int = 200
    train_steps: Optional[int] = None
    single_calls: int = 300
    cfrl_train_steps: Optional[int] = None
    cfrl_autoencoder_epochs: int = 50
    n_diverse: int = 50
    dice_sample_size: int = 1000
    dice_max_iterations: int = 500
    dice_row_limit_s: float = 120.0


@dataclass(frozen=True)
class Profile:
    """A complete benchmark run.

    Attributes
    ----------
    name
        ``'full'`` or ``'quick'``.
    datasets
        Per data set, its :class:`DatasetProfile`.
    threads
        Intra-op threads of TensorFlow and PyTorch for fits and batch explanations (the CI
        machine's cores).
    baseline_workers
        Processes that share the baseline instances (each single-threaded, one per core).
    seed
        Seed of the splits, models, subsets and explainers.
    shared_processes
        Run a data set's sequential steps in one worker process (and the diversity jobs, and each shard of
        alibi's searches, in one process each) instead of a process per step: saves a process start and the
        frameworks' imports (about 15 s each on 2 cores) per step, at the cost of clean measures (peak memory
        and thread settings are shared; TensorFlow keeps the first step's threads). The quick profile's choice.
    """

    name: str
    datasets: Dict[str, DatasetProfile] = field(default_factory=dict)
    threads: int = 2
    baseline_workers: int = 2
    seed: int = 0
    shared_processes: bool = False

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-serialisable copy."""
        return asdict(self)


CFRL_TRAIN_STEPS = 10000
"""CFRL's training steps in the full profile: a tenth of alibi's Adult example (100,000 steps, about
half an hour per data set on 2 cores at ~17 ms a step), which would not fit the hour; 10,000 is the
budget of the run quoted in issue 11."""

FULL = Profile(
    name="full",
    datasets={
        "mnist": DatasetProfile(classifier_epochs=3, autoencoder_epochs=5, n_baseline=200),
        "compas": DatasetProfile(classifier_epochs=30, autoencoder_epochs=60, n_baseline=200,
                                 cfrl_train_steps=CFRL_TRAIN_STEPS, cfrl_autoencoder_epochs=50),
        "pima": DatasetProfile(classifier_epochs=150, autoencoder_epochs=300, n_baseline=200,
                               cfrl_train_steps=CFRL_TRAIN_STEPS, cfrl_autoencoder_epochs=300),
    },
)
"""``tox -e bench``: whole test sets, a few hundred instances for the gradient searches."""

QUICK_DICE: Dict[str, Any] = {"n_diverse": 3, "dice_sample_size": 200, "dice_max_iterations": 20,
                              "dice_row_limit_s": 10.0}
"""The diversity comparison in the quick profile: 3 rows, small DiCE settings (CI's budget is a minute)."""

QUICK = Profile(
    name="quick",
    shared_processes=True,
    datasets={
        "mnist": DatasetProfile(classifier_epochs=1, autoencoder_epochs=1, n_train=5000, n_test=500, n_baseline=3,
                                train_steps=10, single_calls=30),
        "compas": DatasetProfile(classifier_epochs=10, autoencoder_epochs=20, n_baseline=3, train_steps=100,
                                 single_calls=30, cfrl_train_steps=100, cfrl_autoencoder_epochs=5, **QUICK_DICE),
        "pima": DatasetProfile(classifier_epochs=50, autoencoder_epochs=100, n_baseline=3, train_steps=100,
                               single_calls=30, cfrl_train_steps=100, cfrl_autoencoder_epochs=20, **QUICK_DICE),
    },
)
"""``tox -e bench-quick`` (CI): every method on small subsets with few training steps; figures are not meaningful.
Reads only the data shipped with the repository (MNIST: the 5,000-image subset)."""

PROFILES = {p.name: p for p in (FULL, QUICK)}


def profile(name: str, *, threads: Optional[int] = None, workers: Optional[int] = None,
            datasets: Optional[Tuple[str, ...]] = None, n_baseline: Optional[int] = None) -> Profile:
    """A named profile with the command line's overrides applied."""
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}; use one of {sorted(PROFILES)}.")
    p = PROFILES[name]
    sets = dict(p.datasets)
    if datasets:
        unknown = [d for d in datasets if d not in sets]
        if unknown:
            raise ValueError(f"Unknown data sets {unknown}; use some of {sorted(sets)}.")
        sets = {d: sets[d] for d in datasets}
    if n_baseline is not None:
        sets = {d: replace(s, n_baseline=n_baseline) for d, s in sets.items()}
    return replace(p, datasets=sets, threads=threads or p.threads, baseline_workers=workers or p.baseline_workers)
