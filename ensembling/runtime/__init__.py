"""What an export ships and runs offline: the manifest, the predictors, their members and decisions, the
submission writers and validators, the read-ahead pool. ``tests/ensembling/test_offline.py`` keeps it free
of Ray, MLflow, Optuna and pandas, and ``ensembling.export`` copies exactly what ``ensembling.predict`` imports,
plus ``pyfunc`` (the MLflow wrapper, imported only when MLflow loads the model).
"""
