"""The data layer: formats (one module each, on one registry), images, RLE, folds, datasets, the study.

The built-in formats register on the first ``get_format``/``list_formats`` (``formats.BUILTIN_FORMATS``), not on
import: the exported kernel imports images and RLE code from here with no pandas. A new format is a module
here plus its name in ``BUILTIN_FORMATS``.
"""
