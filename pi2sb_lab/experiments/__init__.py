"""Experiment code: the 2D and MNIST studies, their ablations and reports.

Everything here imports downwards — the method core (schedule … pipeline) and
the engine (train, nets, data, metrics, viz) — and nothing there imports this
package (``tests/test_layout.py`` checks the import graph).

- ``twod``, ``twod_ablation``: the blind 2D problem (notebooks 02–04, ``toy/twod.py``);
- ``mnist``, ``mnist_eval``, ``mnist_ablation``, ``mnist_report``: P-I2SB's MNIST
  study (notebook 05, ``toy/mnist.py`` = ``make demo``);
- ``baselines``, ``baselines_report``, ``corruptions``, ``editing``, ``budget``,
  ``studies_report``, ``cells``: the diffusion baselines and the papers' other claims
  (notebook 06, ``toy/baselines.py``).
"""
