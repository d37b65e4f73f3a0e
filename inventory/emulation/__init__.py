"""The provider-neutral emulator engine: local HTTP servers that speak a provider's API.

Used by ``inventory demo``, the integration tests and the benchmarks, and runnable alone
with ``inventory emulate PROVIDER``. The engine (server and control API, faults, catalogue
store and mutation, trait generation, request counting) names no provider: each provider's
*dialect* lives in its own folder, ``inventory/providers/<name>/emulator.py``. The fault
kinds are documented in docs/emulators.md, what each emulator accepts on its provider page
(docs/providers/).
"""

# Re-exported: what a dialect builds on ("X as X" marks a re-export for the type checker).
from inventory.emulation.app import Call as Call
from inventory.emulation.app import EmulatorApp as EmulatorApp
from inventory.emulation.app import Refusal as Refusal
from inventory.emulation.app import refusal_table as refusal_table
from inventory.emulation.catalogue import MUTATIONS as MUTATIONS
from inventory.emulation.catalogue import Catalogue as Catalogue
from inventory.emulation.faults import FAULT_KINDS as FAULT_KINDS
from inventory.emulation.faults import FaultRule as FaultRule
from inventory.emulation.faults import Faults as Faults
from inventory.emulation.messages import Request as Request
from inventory.emulation.messages import Response as Response
from inventory.emulation.server import EmulatorServer as EmulatorServer
from inventory.emulation.sources import EmulatedSource as EmulatedSource
from inventory.emulation.sources import Running as Running
