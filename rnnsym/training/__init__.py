"""Training with the compiled gradients: optimizers, initialisation, built-in tasks, data files,
the train loop, checkpoints and predictions.

>>> import rnnsym as rs
>>> result = rs.train(rs.seed_rnn(steps=4), "sentiment", optimizer="sgd", lr=0.5, epochs=2, size=100)
>>> result.history["epoch"]
[0, 1, 2]

Where things live: ``optimizers`` (the update rules, one table, and gradient clipping),
``initializers``, ``tasks``, ``data`` (Dataset, CSV and .npz files), ``checkpoint`` (atomic
JSON/.npz files), ``loop`` (``train``, ``predict``, ``load_model``), ``backend`` (the gradients on
NumPy, JAX or PyTorch), ``outputs`` (the files a run writes), ``cli`` (``rnnsym train`` and
``rnnsym predict``).
"""
from .checkpoint import load_checkpoint, save_checkpoint
from .data import Dataset, load_data, save_data
from .initializers import INITIALIZERS, init_params
from .loop import Model, TrainingInterrupted, TrainResult, load_model, predict, train
from .optimizers import OPTIMIZERS, clip_grad_norm
from .tasks import TASKS, make_task

__all__ = ["Dataset", "INITIALIZERS", "Model", "OPTIMIZERS", "TASKS", "TrainResult", "TrainingInterrupted",
           "clip_grad_norm", "init_params", "load_checkpoint", "load_data", "load_model", "make_task",
           "predict", "save_checkpoint", "save_data", "train"]
