"""Root test configuration: the fault suite's per-scenario summary, also under xdist."""

pytest_plugins = ["tests.fault.summary"]
