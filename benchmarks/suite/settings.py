"""Profiles (what a run computes), paths, and the data directory setting."""

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
"""The repository's root (the folder holding ``benchmarks/``)."""

DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
DEFAULT_CACHE_DIR = REPO / "benchmarks" / "cache"
DEFAULT_RESULTS_DIR = REPO / "benchmarks" / "results"

DATA_FILES = {
    "mnist": "mnist.npz",
    "compas": "compas-scores-two-years.csv",
    "pima": "pima-indians-diabetes.csv",
}
"""The file each data set is read from, inside the data directory."""


def data_dir(cli_value: Optional[str] = None) -> Path:
    """The data directory: the CLI flag, else ``COUNTERGAN_DATA_DIR``, else ``../shared/data``."""
    if cli_value:
        return Path(cli_value).expanduser().resolve()
    env = os.environ.get("COUNTERGAN_DATA_DIR")
    return Path(env).expanduser().resolve() if env else DEFAULT_DATA_DIR.resolve()


def data_file(directory: Path, dataset: str) -> Path:
    """The path of a data set's file, with an error naming the file and the setting when it is missing."""
    path = Path(directory) / DATA_FILES[dataset]
    if not path.is_file():
        raise FileNotFoundError(
            f"The {dataset} benchmark needs the file {path}, which does not exist. Put {DATA_FILES[dataset]} in the "
            f"data directory, or point the benchmark at the folder holding it with --data-dir or the environment "
            f"variable COUNTERGAN_DATA_DIR (now: {os.environ.get('COUNTERGAN_DATA_DIR', 'unset')}).")
    return path


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
    """

    name: str
    datasets: Dict[str, DatasetProfile] = field(default_factory=dict)
    threads: int = 2
    baseline_workers: int = 2
    seed: int = 0

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

QUICK = Profile(
    name="quick",
    datasets={
        "mnist": DatasetProfile(classifier_epochs=1, autoencoder_epochs=1, n_train=10000, n_test=500, n_baseline=3,
                                train_steps=30, single_calls=30),
        "compas": DatasetProfile(classifier_epochs=10, autoencoder_epochs=20, n_baseline=3, train_steps=100,
                                 single_calls=30, cfrl_train_steps=100, cfrl_autoencoder_epochs=5),
        "pima": DatasetProfile(classifier_epochs=50, autoencoder_epochs=100, n_baseline=3, train_steps=100,
                               single_calls=30, cfrl_train_steps=100, cfrl_autoencoder_epochs=20),
    },
)
"""``tox -e bench-quick`` (CI): every method on small subsets with few training steps; figures are not meaningful."""

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
