"""The participant's side, in each site's process or kernel: the
:class:`~nbfl.participant.client.Client` and its IO thread, task functions, the
seed-style Executor API, the built-in trainers (torch and numpy) and the site's own
statistics. It never imports the controller side; ``python -m nbfl.participant`` is
the command a spawned or template-forked client runs.
"""
