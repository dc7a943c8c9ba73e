"""A simulation of operation (issue 18): a seeded, scripted period of hourly and
nightly `segments run`s, driven through the production CLI, over generated
landing files, definition edits, held snapshots, rejected files, crashes and a
moved data folder; after every run the published state is checked against
tests/reference.py.

Modules: features (switches for contract features still being built), world
(subscribers, events, suppressions and the files that carry them), defs
(segment and audience definitions and their edits), cli (runs and kills),
check (the published state against the oracle), scenario (the script).
"""
