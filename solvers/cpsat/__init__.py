"""CP-SAT alignment model: variables, one module per rule, and the solve driver."""

from .solve import solve_cpsat

__all__ = ["solve_cpsat"]
