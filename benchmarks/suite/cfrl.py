"""alibi's ``CounterfactualRLTabular`` (CFRL) as a benchmark method, set up as in alibi's own examples.

CFRL works on data in a data set's "original" layout: numerical columns and one label-encoded
column per categorical variable, described by ``feature_names`` and a ``category_map``; its
autoencoder sees the preprocessed layout (standardised numbers, one-hot categories), and its
predictor is called on the original layout. The benchmark's encoded rows are already the
preprocessed layout (numerical columns standardised, then the one-hot groups), so
:class:`Layout` converts between the two exactly: numbers pass through unchanged and each
one-hot group becomes its category's index and back.

The pieces are alibi's: the heterogeneous autoencoder ``HeAE`` with ``ADULTEncoder`` and
``ADULTDecoder`` (hidden size 128, latent size 15, as in alibi's Adult example), trained on the
training rows with a squared error on the numerical head and a cross-entropy per categorical
head; sparsity and consistency coefficients 0.5 (the example's); the PyTorch backend; the data
set's immutable features named by variable (``'sex'``, ``'race'``, ``'age'``). CFRL is a
black-box method: it only calls the predictor.
"""

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from benchmarks.suite.data import Dataset

HIDDEN_DIM = 128
LATENT_DIM = 15
COEFF_SPARSITY = 0.5
COEFF_CONSISTENCY = 0.5
AE_BATCH = 128
AE_LR = 1e-3


@dataclass(frozen=True)
class Layout:
    """The encoded layout (numerical columns, then one-hot groups) and CFRL's original layout.

    Attributes
    ----------
    numeric
        Number of numerical columns (they come first).
    groups
        ``(first column, size)`` of each one-hot group, in column order.
    feature_names
        CFRL's names: the numerical columns' names, then one name per categorical variable.
    category_map
        CFRL's ``{column of the original layout: category names}``.
    """

    numeric: int
    groups: Tuple[Tuple[int, int], ...]
    feature_names: Tuple[str, ...]
    category_map: Dict[int, List[str]]

    @classmethod
    def of(cls, ds: Dataset) -> "Layout":
        """The layout of a tabular data set whose one-hot columns are named ``'variable=category'``."""
        if ds.feature_names is None:
            raise ValueError(f"CFRL on tabular data needs feature names; {ds.name} has none.")
        names = list(ds.feature_names)
        groups = tuple(sorted(ds.cat_vars.items()))
        numeric = groups[0][0] if groups else len(names)
        end = numeric
        for start, size in groups:
            if start != end:
                raise ValueError("expected the numerical columns first and contiguous one-hot groups after them.")
            end = start + size
        if end != len(names):
            raise ValueError(f"the one-hot groups end at column {end}, the data have {len(names)} columns.")
        cfrl_names = names[:numeric]
        category_map: Dict[int, List[str]] = {}
        for start, size in groups:
            variables = {n.split("=", 1)[0] for n in names[start:start + size]}
            if len(variables) != 1 or any("=" not in n for n in names[start:start + size]):
                raise ValueError(f"columns {names[start:start + size]} are not one variable's 'variable=category'.")
            category_map[len(cfrl_names)] = [n.split("=", 1)[1] for n in names[start:start + size]]
            cfrl_names.append(variables.pop())
        return cls(numeric, groups, tuple(cfrl_names), category_map)

    def variable(self, encoded_name: str) -> str:
        """CFRL's name of an encoded column (a one-hot column names its variable)."""
        return encoded_name.split("=", 1)[0]

    def to_original(self, x: np.ndarray) -> np.ndarray:
        """Encoded rows to CFRL's original layout (each group's largest entry names the category)."""
        x = np.asarray(x)
        parts = [x[:, :self.numeric]] + [np.argmax(x[:, s:s + n], axis=1)[:, None] for s, n in self.groups]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def to_encoded(self, x: np.ndarray) -> np.ndarray:
        """CFRL's original layout to encoded rows (the preprocessor of its autoencoder)."""
        x = np.asarray(x, dtype=np.float32)
        parts = [x[:, :self.numeric]]
        for j, (_, n) in enumerate(self.groups):
            codes = np.rint(x[:, self.numeric + j]).astype(np.int64)
            if np.any((codes < 0) | (codes >= n)):
                raise ValueError(f"category codes of variable {self.feature_names[self.numeric + j]!r} must lie in "
                                 f"0..{n - 1}.")
            parts.append(np.eye(n, dtype=np.float32)[codes])
        return np.concatenate(parts, axis=1)

    def decoded_to_original(self, x: np.ndarray) -> np.ndarray:
        """The inverse preprocessor: the decoder's concatenated (sampled, one-hot) output to the original layout."""
        return self.to_original(np.asarray(x, dtype=np.float32))


def build_autoencoder(layout: Layout) -> Any:
    """alibi's heterogeneous autoencoder: ``ADULTEncoder`` and a decoder head per variable type."""
    from alibi.models.pytorch.autoencoder import HeAE
    from alibi.models.pytorch.cfrl_models import ADULTDecoder, ADULTEncoder

    output_dims = ([layout.numeric] if layout.numeric else []) + [n for _, n in layout.groups]
    return HeAE(encoder=ADULTEncoder(hidden_dim=HIDDEN_DIM, latent_dim=LATENT_DIM),
                decoder=ADULTDecoder(hidden_dim=HIDDEN_DIM, output_dims=output_dims))


def train_autoencoder(autoencoder: Any, layout: Layout, x_encoded: np.ndarray, epochs: int, seed: int) -> float:
    """Train the autoencoder (Adam, squared error on the numbers, cross-entropy per category); its last loss.

    The categorical heads' losses are weighted ``1 / n_categorical`` each, as in alibi's Adult example.
    """
    import torch

    torch.manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(x_encoded, dtype=np.float32))
    labels = [x[:, s:s + n].argmax(dim=1) for s, n in layout.groups]
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=AE_LR)
    cat_weight = 1.0 / len(layout.groups) if layout.groups else 0.0
    generator = torch.Generator().manual_seed(seed)
    loss = torch.zeros(())
    autoencoder.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), AE_BATCH):
            idx = order[i:i + AE_BATCH]
            heads = autoencoder(x[idx])
            loss = torch.zeros(())
            h = 0
            if layout.numeric:
                loss = loss + torch.nn.functional.mse_loss(heads[0], x[idx, :layout.numeric])
                h = 1
            for j, head in enumerate(heads[h:]):
                loss = loss + cat_weight * torch.nn.functional.cross_entropy(head, labels[j][idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    autoencoder.eval()
    return float(loss.detach())


def make_explainer(ds: Dataset, layout: Layout, predict_encoded: Callable[[np.ndarray], np.ndarray],
                   autoencoder: Any, train_steps: int, seed: int) -> Any:
    """An unfitted ``CounterfactualRLTabular`` for a data set, its immutable features named by variable."""
    from alibi.explainers import CounterfactualRLTabular

    immutable: List[str] = []
    for name in ds.immutable:
        variable = layout.variable(name)
        if variable not in immutable:
            immutable.append(variable)
    return CounterfactualRLTabular(
        predictor=OriginalPredictor(layout, predict_encoded),
        encoder=autoencoder.encoder, decoder=autoencoder.decoder,
        encoder_preprocessor=layout.to_encoded, decoder_inv_preprocessor=layout.decoded_to_original,
        coeff_sparsity=COEFF_SPARSITY, coeff_consistency=COEFF_CONSISTENCY,
        feature_names=list(layout.feature_names), category_map=layout.category_map,
        immutable_features=immutable, latent_dim=LATENT_DIM, backend="pytorch", seed=seed,
        train_steps=train_steps, num_workers=0)


@dataclass(frozen=True)
class OriginalPredictor:
    """The benchmark's encoded-space predictor, called on CFRL's original layout."""

    layout: Layout
    predict_encoded: Callable[[np.ndarray], np.ndarray]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.predict_encoded(self.layout.to_encoded(x))


def fit(ds: Dataset, predict_encoded: Callable[[np.ndarray], np.ndarray], train_steps: int, autoencoder_epochs: int,
        seed: int) -> Tuple[Any, Dict[str, Any]]:
    """Train the autoencoder and then CFRL on the training rows; the explainer and the timings."""
    import torch

    torch.manual_seed(seed)
    layout = Layout.of(ds)
    autoencoder = build_autoencoder(layout)
    start = time.perf_counter()
    ae_loss = train_autoencoder(autoencoder, layout, ds.X_train, autoencoder_epochs, seed)
    ae_s = time.perf_counter() - start
    explainer = make_explainer(ds, layout, predict_encoded, autoencoder, train_steps, seed)
    start = time.perf_counter()
    explainer.fit(layout.to_original(ds.X_train))
    rl_s = time.perf_counter() - start
    return explainer, {"autoencoder_s": ae_s, "autoencoder_epochs": autoencoder_epochs,
                       "autoencoder_loss": ae_loss, "rl_s": rl_s, "fit_s": ae_s + rl_s, "train_steps": train_steps}


def explain(explainer: Any, layout: Layout, x_encoded: np.ndarray, target: int,
            batch_size: Optional[int] = None) -> np.ndarray:
    """Counterfactuals of encoded rows, in the encoded layout (CFRL always returns one per row)."""
    x = layout.to_original(x_encoded)
    explanation = explainer.explain(x, Y_t=np.array([target]), C=[], batch_size=batch_size or max(1, len(x)))
    return layout.to_encoded(np.asarray(explanation.data["cf"]["X"], dtype=np.float32))
