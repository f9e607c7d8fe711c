"""An OpenRouter-compatible server that runs here: priced from the catalogue, with faults.

It speaks OpenRouter's wire format (reference/openrouter-api.md), draws latencies per tier,
injects faults on request, and answers trading prompts with decisions computed from the
features in the prompt, deterministically for a given seed.
"""

from lyra.simulator.app import create_app
from lyra.simulator.faults import FAULT_KINDS, Fault
from lyra.simulator.options import SimulatorOptions
from lyra.simulator.server import Simulator, run_simulator
from lyra.simulator.state import SimulatorState, SimulatorStats, key_label

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "Simulator",
    "SimulatorOptions",
    "SimulatorState",
    "SimulatorStats",
    "create_app",
    "key_label",
    "run_simulator",
]
