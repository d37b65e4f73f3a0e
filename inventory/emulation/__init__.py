"""The provider-neutral emulator engine: local HTTP servers that speak a provider's API.

Used by ``inventory demo``, the integration tests and the benchmarks, and runnable alone
with ``inventory emulate PROVIDER``. The engine (server and control API, faults, catalogue
store and mutation, trait generation, request counting) names no provider: each provider's
*dialect* lives in its own folder, ``inventory/providers/<name>/emulator.py``. The fault
kinds and the credentials each emulator accepts are documented in docs/emulators.md.
"""

from inventory.emulation.app import Call, EmulatorApp, Refusal, refusal_table
from inventory.emulation.catalogue import MUTATIONS, Catalogue
from inventory.emulation.faults import FAULT_KINDS, FaultRule, Faults
from inventory.emulation.server import EmulatorServer, Request, Response
from inventory.emulation.sources import EmulatedSource, Running

__all__ = [
    "FAULT_KINDS",
    "MUTATIONS",
    "Call",
    "Catalogue",
    "EmulatedSource",
    "EmulatorApp",
    "EmulatorServer",
    "FaultRule",
    "Faults",
    "Refusal",
    "Request",
    "Response",
    "Running",
    "refusal_table",
]
