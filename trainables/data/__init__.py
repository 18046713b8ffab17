"""``python -m trainables.data``: the command that lists the data formats; the data layer itself is ``core/data``."""
