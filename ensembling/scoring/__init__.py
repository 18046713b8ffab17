"""Scoring ensembles on OOF: blends and their counting paths, greedy selection, the nested estimate, the
inference budget, and the class knobs tuned on OOF. Pure algorithms: no MLflow, no Ray.
"""
