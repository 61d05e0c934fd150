"""Benchmarks: each module measures one part of the library against the bare code it replaces."""
