"""The controller's side, in the notebook kernel that holds the global model: the
:class:`~nbfl.controller.controller.Controller` (lifecycle, admission, the panel's
status), a run's thread (:mod:`~nbfl.controller.run`), the client registry, checkpoints
and workshops. With :mod:`nbfl.workflows` and :mod:`nbfl.aggregators` it is the
controller side, which never imports :mod:`nbfl.participant`.
"""
