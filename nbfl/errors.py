"""The root of nbfl's own errors.

Every error nbfl raises on purpose derives from :class:`NbflError`, so a caller can catch
"anything nbfl refused or could not do" in one clause and let other bugs through. Each
also keeps the built-in base it had (``ValueError`` for bad input, ``RuntimeError`` for
a state that does not allow the call), so code that caught those still does. This
module imports nothing, so any part of nbfl, on either side of the wire, may use it.
"""


class NbflError(Exception):
    """An error nbfl raises on purpose: bad input, a refused request, a run that failed."""
