"""The comparative benchmark: the paper's Tables 2 and 3 (and Pima), reproduced on this machine.

``python -m benchmarks.suite --profile full`` (``tox -e bench``) or ``--profile quick``
(``tox -e bench-quick``, the CI profile). The runner (:mod:`benchmarks.suite.runner`) trains or
loads the target classifiers and the realism autoencoders (:mod:`benchmarks.suite.models`), runs
every method in processes of its own (:mod:`benchmarks.suite.worker`), then scores all
counterfactuals with the same classifier and autoencoder (:mod:`alibi_countergan.metrics`) and
writes the tables, the JSON file and the figure (:mod:`benchmarks.suite.report`).
"""
