"""The names of the files in a run directory and a model directory: the one place they are spelt.

A run directory ``runs/NAME/`` (docs/training.md, docs/runs.md) holds what the trainer writes
(``CONFIG`` … ``CHECKPOINT_DIR``) plus the run manager's own ``LAUNCH`` file and, on "Open in
explorer" of a running run, a ``SNAPSHOT_PREFIX<step>/`` model directory. A model directory
(``runs/NAME/model``, ``FaderNetwork.save_pretrained``) holds ``MODEL_WEIGHTS`` + ``MODEL_CONFIG``,
and, when trained with a validation set, ``MODEL_VALIDATION_STATS``.
Importing this module imports nothing else.
"""

__all__ = ["CHECKPOINT_DIR", "CHECKPOINT_STATE", "CONFIG", "LAUNCH", "LOG", "METRICS", "MODEL_CONFIG",
           "MODEL_CALIBRATION", "MODEL_DIR", "MODEL_VALIDATION_STATS", "MODEL_WEIGHTS", "SCHEDULER_LOCK",
           "SNAPSHOT_PREFIX", "STATUS"]

# Written by the trainer (twinviz.training.rundir).
CONFIG = "config.json"          # the TrainConfig
STATUS = "status.json"          # state, progress, best metrics; replaced atomically
METRICS = "metrics.jsonl"       # one JSON record per line
LOG = "train.log"               # human-readable log
MODEL_DIR = "model"             # the best model (a model directory)
CHECKPOINT_DIR = "checkpoint"   # the latest trainer state, for --resume
CHECKPOINT_STATE = "state.json"  # inside CHECKPOINT_DIR: step counters + the tensor file's name

# Written by the run manager (twinviz.runs).
LAUNCH = "launch.json"          # argv, devices, PID, queue/launch times, cancel request
SNAPSHOT_PREFIX = "snapshot-step"  # + step: a running run's latest checkpoint as a model directory
SCHEDULER_LOCK = ".scheduler.lock"  # in the runs folder: serialises starting queued runs

# A model directory (FaderNetwork.save_pretrained / from_pretrained).
MODEL_CONFIG = "config.json"
MODEL_WEIGHTS = "model.safetensors"
MODEL_CALIBRATION = "calibration.json"  # `twinviz calibrate`: P(twin | distance), tied to the weights' hash
MODEL_VALIDATION_STATS = "validation_stats.json"  # per-star validation recon MSE (twinviz.evaluation.ood)
