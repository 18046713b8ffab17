"""The shared core that search, trainables and ensembling all import: the study and trial folder contract,
the data layer, configs and registries, models, metrics and post-processing, writing files safely.

It imports nothing from search, trainables or ensembling (tests/test_import_cycles.py).
"""
