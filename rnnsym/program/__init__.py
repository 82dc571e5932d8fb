"""The adjoint program: one backward program from which the derivation's recursive view and every
compiled form are made.

``build_program(network)`` gives the program as data (rnnsym.program.ir), ``simplify`` and
``optimise`` run the passes (rnnsym.program.passes), and an emitter (rnnsym.numeric.emit) prints it
as source. A lower layer: it imports the graph and the engine, never a printer or an emitter.
"""
from .build import adjoint_shares, build_program, view_shares
from .ir import Accumulate, Compute, Fill, Program, Read, Role, Share, Value
from .passes import optimise, simplify

__all__ = ["build_program", "adjoint_shares", "view_shares", "simplify", "optimise", "Program", "Value", "Role",
           "Read", "Fill", "Compute", "Share", "Accumulate"]
