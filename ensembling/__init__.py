"""From trials to a submission. Three layers, each importing only the ones below it and ``core``:

- ``ensembling/runtime/``: what an export ships and runs offline (manifest, predictors, submission
  writers); ``ensembling.predict`` is its command, and the export copies exactly what that imports.
- ``ensembling/scoring/``: pure algorithms on OOF (blends and counting, greedy selection, the nested
  estimate, the inference budget, the class knobs).
- the commands, here: ``select`` (with ``select_classes`` and ``gate_study``), ``export``, ``predict``,
  ``refit``, ``score``, ``lb``, their key parsing (``cli``) and where they may write (``places``).
"""
