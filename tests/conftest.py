"""Root test configuration: the fault suite's per-scenario summary, also under xdist."""

import os

pytest_plugins = ["tests.fault.summary"]

# Hermetic: no test reads the real ~/.ssh/config unless it passes --ssh-config itself.
os.environ.setdefault("ROLLOUT_SSH_CONFIG", "none")
