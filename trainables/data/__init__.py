"""The data layer: formats (one module each, on one registry), images, RLE, folds, datasets, the study.

Importing the package registers the built-in formats; a new format is a module here plus one line below.
"""

from trainables.data import carvana, classes, folder, severstal, synthetic  # noqa: F401  (each registers its format)
