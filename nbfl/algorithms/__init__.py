"""Algorithms with a client half, one folder each, the two halves side by side under one name.

``<name>/server.py`` is the controller's half, a registered workflow (run by a run's
thread in the controller's kernel); ``<name>/client.py`` (and ``client_torch.py`` for a
torch loop) is the site's half, which a trainer calls; ``<name>/__init__.py`` holds the
names both halves read (meta keys, tensor prefixes). The halves never import each
other: ``tests/unit/test_layers.py`` gives ``server`` modules the controller's role and
``client`` modules the participant's. Algorithms without a client half are one file in
:mod:`nbfl.workflows`.
"""
