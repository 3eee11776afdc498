"""Background training runs: launch, queue, follow, cancel and list them (docs/runs.md).

``RunManager`` (manager.py) launches and schedules; ``Run`` (run.py) reads one run directory;
``devices``/``resolve_devices`` (devices.py), ``MetricsFollower``/``log_tail`` (follow.py),
process handling (processes.py), launch checks (validate.py) and the listing of the spectra
datasets a data folder offers (datasets.py) sit beside them.
"""
from twinviz.runs.datasets import DatasetInfo, default_pair, spectra_datasets
from twinviz.devices import Device, DeviceError, devices, resolve_devices
from twinviz.runs.follow import MetricsFollower, log_tail
from twinviz.runs.manager import RunManager
from twinviz.runs.run import ACTIVE_STATES, FINAL_STATES, Run
from twinviz.runs.validate import LIMITS, RunError

__all__ = ["ACTIVE_STATES", "DatasetInfo", "Device", "DeviceError", "FINAL_STATES", "LIMITS", "MetricsFollower", "Run",
           "RunError", "RunManager", "default_pair", "devices", "log_tail", "resolve_devices",
           "spectra_datasets"]
