"""The vectorized inner engine: K independent inner runs trained as one batched computation.

* :mod:`~mmrl_env.engine.trainer` — :class:`VectorTrainer`, the K-run ``InnerTrainer``;
* :mod:`~mmrl_env.engine.joint` — the ``joint`` learner on stacked tensors (``vmap``, or the explicit kernel below);
* :mod:`~mmrl_env.engine.ogm_ge`, :mod:`~mmrl_env.engine.mla`, :mod:`~mmrl_env.engine.boosting` — the
  other learners, on :mod:`~mmrl_env.engine.stacked` (optimizer groups, per-run housekeeping);
* :mod:`~mmrl_env.engine.kernels` — the joint learner's explicit batched MLP step (forward + exact backward);
* :mod:`~mmrl_env.engine.stack` — K models as stacked parameters/buffers;
* :mod:`~mmrl_env.engine.optim` — SGD/Adam and StepLR with per-run state and lr;
* :mod:`~mmrl_env.engine.batchnorm` — BatchNorm over valid rows, running stats returned;
* :mod:`~mmrl_env.engine.batch` — the K-run batch (per-sample masks) and step output.
"""

from mmrl_env.engine.batch import VectorBatch, VectorPrediction, VectorStepOutput
from mmrl_env.engine.trainer import VectorTrainer

__all__ = ["VectorBatch", "VectorPrediction", "VectorStepOutput", "VectorTrainer"]
