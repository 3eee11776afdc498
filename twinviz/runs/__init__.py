"""Background training runs: launch, queue, follow, cancel and list them (docs/runs.md).

``RunManager`` (manager.py) launches and schedules; ``Run`` (run.py) reads one run directory;
``devices``/``resolve_devices`` (devices.py), ``MetricsFollower``/``log_tail`` (follow.py),
process handling (processes.py) and launch checks (validate.py) sit beside them.
"""
from twinviz.runs.devices import Device, DeviceError, devices, resolve_devices
from twinviz.runs.follow import MetricsFollower, log_tail
from twinviz.runs.manager import RunManager
from twinviz.runs.run import ACTIVE_STATES, FINAL_STATES, Run
from twinviz.runs.validate import LIMITS, RunError

__all__ = ["ACTIVE_STATES", "Device", "DeviceError", "FINAL_STATES", "LIMITS", "MetricsFollower", "Run",
           "RunError", "RunManager", "devices", "log_tail", "resolve_devices"]
