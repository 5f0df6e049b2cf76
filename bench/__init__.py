"""Benchmarks (not tests): ``python -m bench`` runs them all, ``python -m bench.routing`` one of them.

Each benchmark prints a Markdown table and keeps a copy under ``var/bench/``. They measure this machine
at this moment: compare figures from the same run, not across machines.
"""
