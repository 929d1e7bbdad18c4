"""Plumbing every stage shares: the error convention (errors), argument and output checks (checks),
atomic outputs and JSON (outputs), which code made an output (provenance), devices and CPU threads
(devices), glibc's allocator (memory) and worker processes (workers).

The bottom layer: imports nothing of lib/.
"""
