"""Helpers every layer may use (validation, optional imports, threads, atomic writes, warnings).

Nothing here imports another part of spotfit except the core bindings (for the thread cap).
"""
