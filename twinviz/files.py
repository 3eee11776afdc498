"""The names of the files in a run directory, a model bundle and a pixel-finder folder: the one place
they are spelt.

A run directory ``runs/NAME/`` (docs/training.md, docs/runs.md) holds what the trainer writes
(``CONFIG`` … ``CHECKPOINT_DIR``) plus the run manager's own ``LAUNCH`` file and, on "Open in
explorer" of a running run, a ``SNAPSHOT_PREFIX<step>/`` model directory. A model directory
(``runs/NAME/model``, ``FaderNetwork.save_pretrained``) holds ``MODEL_WEIGHTS`` + ``MODEL_CONFIG``,
and, when trained with a validation set, ``MODEL_VALIDATION_STATS``.
Importing this module imports nothing else.
"""

__all__ = ["CHECKPOINT_DIR", "CHECKPOINT_STATE", "CONFIG", "FINDER_CONFIG", "FINDER_WEIGHTS", "LAUNCH", "LOG",
           "METRICS", "MODEL_CALIBRATION", "MODEL_CONFIG", "MODEL_DIR", "MODEL_PROVENANCE", "MODEL_VALIDATION_STATS",
           "MODEL_WEIGHTS", "SCHEDULER_LOCK", "SNAPSHOT_PREFIX", "STATUS", "TWIN_METRIC_CONFIG", "TWIN_METRIC_WEIGHTS"]

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

# A model directory = a model bundle (twinviz.bundle.ModelBundle; docs/architecture.md). Every
# sidecar records the SHA-256 of the weights it belongs to and the fingerprint of the data it was
# fitted and chosen on (twinviz.spectra.fingerprint).
MODEL_CONFIG = "config.json"          # ModelConfig + the weights' SHA-256 (FaderNetwork.save_pretrained)
MODEL_WEIGHTS = "model.safetensors"
MODEL_PROVENANCE = "provenance.json"  # what the weights were trained on and their epoch chosen on
MODEL_CALIBRATION = "calibration.json"  # `twinviz calibrate`: P(twin | distance) for one named distance
MODEL_VALIDATION_STATS = "validation_stats.json"  # per-star validation recon MSE (twinviz.latents.ood)
TWIN_METRIC_WEIGHTS = "twin_metric.safetensors"  # the twin metric (twinviz.twins.metric)
TWIN_METRIC_CONFIG = "twin_metric.json"

# A pixel-finder folder (`twinviz fit-pixel-finder`, twinviz.evaluation.pixel_finder): these two plus
# the twin metric's two files above.
FINDER_WEIGHTS = "pixel_finder.safetensors"
FINDER_CONFIG = "pixel_finder.json"
