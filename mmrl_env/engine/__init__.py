"""The engine: K models as stacked tensors and the per-run math every learner builds on.

* :mod:`~mmrl_env.engine.stack` — K models as stacked parameters/buffers;
* :mod:`~mmrl_env.engine.optim` — :class:`~mmrl_env.engine.optim.OptimConfig`, SGD/Adam and
  StepLR with per-run state and lr;
* :mod:`~mmrl_env.engine.runs` — one run's step mapped over the K runs (``vmap`` or a loop);
* :mod:`~mmrl_env.engine.kernels` — the joint learner's explicit batched MLP step (forward + exact backward);
* :mod:`~mmrl_env.engine.batchnorm` — BatchNorm over valid rows, running stats returned;
* :mod:`~mmrl_env.engine.batch` — the K-run batch (per-sample masks), step output and prediction.

The learners (:mod:`mmrl_env.learners`) build on these; the inner run that drives a learner over
a data stream is :mod:`mmrl_env.inner_run`, a layer above. Import the modules themselves.
"""
