"""The compared methods: alibi's gradient searches (paper settings), alibi's CFRL and the GAN-based explainers."""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from benchmarks.suite.data import Dataset


@dataclass(frozen=True)
class Method:
    """One column of a table.

    Attributes
    ----------
    key
        Folder and JSON name.
    label
        Column title.
    baseline
        True for alibi's gradient searches (a random subset of instances, TF1 graph mode).
    white_box
        Whether the method uses the classifier's gradients.
    residual
        False for the plain GAN of the paper (the generator outputs the whole counterfactual).
    constrained
        Whether the explainer is told the data set's immutable features.
    cfrl
        alibi's ``CounterfactualRLTabular`` (amortised like CounteRGAN: fit, then explain every row).
    refine
        Whether ``explain`` refines the generator's output (CounteRGAN's default); False shows the raw
        generator, as in the paper.
    fitted_by
        The key of the method whose fitted explainer this one explains with (no fit of its own).
    """

    key: str
    label: str
    baseline: bool
    white_box: bool = True
    residual: bool = True
    constrained: bool = False
    cfrl: bool = False
    refine: bool = True
    fitted_by: Optional[str] = None


RGD = Method("rgd", "Wachter (RGD)", baseline=True)
CSGP = Method("csgp", "CFProto (CSGP)", baseline=True)
CFRL = Method("cfrl", "CFRL (black-box)", baseline=False, white_box=False, constrained=True, cfrl=True)


def methods(dataset: str) -> List[Method]:
    """The methods compared on a data set, in table order.

    MNIST has no constraints. COMPAS runs the GAN-based methods as in the paper (no constraints)
    and CounteRGAN again with race, sex and age immutable. Pima's GAN-based methods all keep its
    immutable features. alibi's searches cannot freeze features: their violations are counted.
    alibi's CFRL (tabular only) keeps the same immutable features as the constrained CounteRGAN rows.
    Each data set's last two CounteRGAN methods (white-box and black-box) are also explained without the
    refinement, from the same fits.
    """
    pima = dataset == "pima"
    out = [RGD, CSGP,
           Method("gan", "GAN", baseline=False, residual=False, constrained=pima),
           Method("countergan-wb", "CounteRGAN", baseline=False, constrained=pima),
           Method("countergan-bb", "CounteRGAN black-box", baseline=False, white_box=False, constrained=pima)]
    if dataset == "compas":
        out += [Method("countergan-wb-immutable", "CounteRGAN, immutable", baseline=False, constrained=True),
                Method("countergan-bb-immutable", "CounteRGAN black-box, immutable", baseline=False,
                       white_box=False, constrained=True)]
    # the same fitted explainers without the refinement: the generator's own output, as in the paper
    wb, bb = out[-2], out[-1]
    out += [Method(m.key + "-raw", m.label + ", not refined", baseline=False, white_box=m.white_box,
                   constrained=m.constrained, refine=False, fitted_by=m.key) for m in (wb, bb)]
    if dataset != "mnist":
        out.append(CFRL)
    return out


def countergan_kwargs(method: Method, ds: Dataset, backend: str, seed: int, train_steps: Any) -> Dict[str, Any]:
    """Constructor arguments of a GAN-based method: the explainer's defaults plus the data set's description."""
    kwargs: Dict[str, Any] = {
        "backend": backend,
        "method": "white-box" if method.white_box else "black-box",
        "target_class": ds.target,
        "residual": method.residual,
        "seed": seed,
        "verbose": False,
    }
    if ds.is_image:
        kwargs["feature_range"] = (0.0, 1.0)
    else:
        kwargs["feature_range"] = ds.feature_range
        kwargs["feature_names"] = ds.feature_names
        if ds.cat_vars:
            kwargs["cat_vars"] = ds.cat_vars
    if method.constrained:
        kwargs["immutable_features"] = list(ds.immutable)
    if ds.is_image:
        kwargs["target_proba"] = MNIST_TARGET_PROBA
    if train_steps is not None:
        kwargs["train_steps"] = int(train_steps)
    return kwargs


MNIST_TARGET_PROBA = 0.95
"""The paper's MNIST table scores confident counterfactuals (the prediction gain): CounteRGAN is asked for a
target probability of 0.95 there, instead of its default of just past the decision boundary."""


# alibi's explainers with the settings of the authors' notebooks (../shared/notes/reproduction.md)
WACHTER_SETTINGS: Dict[str, Any] = {"distance_fn": "l1", "target_proba": 1.0, "max_iter": 200, "lam_init": 1.0,
                                    "max_lam_steps": 5, "tol": 0.5, "learning_rate_init": 0.1}
CFPROTO_SETTINGS: Dict[str, Any] = {"beta": 0.01, "theta": 100.0, "c_init": 1.0, "c_steps": 5,
                                    "max_iterations": 200}
CFPROTO_K_IMAGES = 20
