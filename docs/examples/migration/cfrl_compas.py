"""alibi's CounterfactualRLTabular and CounteRGAN, given the same label-encoded COMPAS table.

Run: ``python docs/examples/migration/cfrl_compas.py`` (PyTorch and scikit-learn; no TensorFlow). Both
explainers are built from the same arguments: alibi's tabular convention, a numeric array whose categorical
columns hold integer codes, described by ``category_map`` and ``feature_names``. CFRL is only constructed
here: it needs an autoencoder trained first, then about 100,000 training steps of its own, far more than this
guide's checks can run. CounteRGAN is fitted and explains a few people.
"""

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from alibi_countergan.datasets import compas_csv

parser = argparse.ArgumentParser()
parser.add_argument("--people", type=int, default=5)
parser.add_argument("--train-steps", type=int, default=1000)
args = parser.parse_args()

# -- the shared part: alibi's label-encoded table, and a model that takes it ------------------------------------
raw = pd.read_csv(compas_csv())
y = (raw.pop("two_year_recid") == 0).astype(int).to_numpy()  # 1: did not reoffend
feature_names = list(raw.columns)  # 6 integer columns, then sex, race, c_charge_degree
category_map = {j: sorted(raw[name].unique()) for j, name in enumerate(feature_names) if raw[name].dtype == object}
X = raw.copy()
for j, categories in category_map.items():
    X[feature_names[j]] = pd.Categorical(raw[feature_names[j]], categories=categories).codes
X = X.to_numpy(dtype=np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

model = make_pipeline(
    ColumnTransformer([("categories", OneHotEncoder(handle_unknown="ignore"), list(category_map))],
                      remainder=StandardScaler()),
    LogisticRegression(max_iter=1000)).fit(X_train, y_train)
predictor = model.predict_proba  # label-encoded rows -> class probabilities, for both explainers

# -- CounterfactualRLTabular (constructed, not trained) ---------------------------------------------------------
from alibi.explainers import CounterfactualRLTabular  # noqa: E402
from alibi.explainers.backends.cfrl_tabular import get_he_preprocessor  # noqa: E402
from alibi.models.pytorch import ADULTDecoder, ADULTEncoder, HeAE  # noqa: E402

integer_columns = {name: int for j, name in enumerate(feature_names) if j not in category_map}
preprocessor, inverse_preprocessor = get_he_preprocessor(X_train, feature_names, category_map,
                                                         feature_types=integer_columns)  # rounds them back
output_dims = [len(feature_names) - len(category_map)] + [len(c) for c in category_map.values()]
autoencoder = HeAE(encoder=ADULTEncoder(hidden_dim=128, latent_dim=15),
                   decoder=ADULTDecoder(hidden_dim=128, output_dims=output_dims))
# ... train the autoencoder on preprocessor(X_train) here (not run: see the module's docstring)
cfrl = CounterfactualRLTabular(
    predictor=predictor, encoder=autoencoder.encoder, decoder=autoencoder.decoder, latent_dim=15,
    encoder_preprocessor=preprocessor, decoder_inv_preprocessor=inverse_preprocessor,
    coeff_sparsity=0.5, coeff_consistency=0.5,
    feature_names=feature_names, category_map=category_map,
    immutable_features=["age", "sex", "race"],
    ranges={"priors_count": [-1.0, 0.0]},  # may only decrease
    backend="pytorch", seed=0, train_steps=100_000, batch_size=100,
)
# cfrl.fit(X_train)                                           # not run here
# cfrl.explain(X_people, Y_t=np.ones(len(X_people)),          # one target per row
#              C=[{"juv_other_count": [0.0, 0.0]}])            # a change of 0 to 0 for this request
print(f"CFRL constructed: {type(cfrl).__name__}, {cfrl.params['train_steps']:,} training steps to run")

# -- CounteRGAN with the same table and arguments ---------------------------------------------------------------
from alibi_countergan import CounteRGAN  # noqa: E402

explainer = CounteRGAN(
    predictor, shape=(1, len(feature_names)),
    feature_names=feature_names, category_map=category_map,
    immutable_features=["age", "sex", "race"],
    monotone={"priors_count": "decreasing"},  # ranges={"priors_count": [-1.0, 0.0]}
    seed=0, train_steps=args.train_steps, verbose=False,
)
start = time.perf_counter()
explainer.fit(X_train)  # no autoencoder to train first
print(f"CounteRGAN fitted in {time.perf_counter() - start:.1f} s")

people = np.flatnonzero(model.predict(X_test) == 0)[: args.people]
explanation = explainer.explain(X_test[people], target_class=1,  # a class, or one per row
                                immutable_features=["juv_other_count"])  # frozen for this request
for i, success, recourse in zip(people, explanation.success, explanation.recourse):
    print(f"person {i}: {'reached' if success else 'missed'}: {recourse}")
codes = explanation.cf["X"][:, list(category_map)]
assert np.array_equal(codes, np.round(codes))  # cf["X"] holds categories as codes, as the input does
