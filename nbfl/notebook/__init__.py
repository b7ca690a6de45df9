"""The notebook face, in the controller's (or a participant's) kernel: the ``%fl_*``
magics, the live dashboard and its plots. The only part of nbfl that imports IPython,
ipywidgets or matplotlib; it drives the controller and the participant sides through
their Python API and is imported by nothing below it.
"""

from .dashboard import history_html

__all__ = ["history_html"]  # the table %fl_history shows, for a controller driven from Python
