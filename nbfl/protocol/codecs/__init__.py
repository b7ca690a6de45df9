"""The codecs, one per file: each module here registers its :class:`~nbfl.protocol.codec.Codec`.

Every module in this folder is imported when this package is, so a new codec is one new
file (:mod:`.blockwise` registers none: it is what ``int8`` and ``int16`` share).
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
