"""``qxdb demo``: an example service, end to end, on the real code paths."""

from qxdb.demo.runner import DEMO_TENANT, DemoReport, DemoStep, prepare_workspace, run_demo

__all__ = ["DEMO_TENANT", "DemoReport", "DemoStep", "prepare_workspace", "run_demo"]
