"""Starting participants for someone else: local processes (:mod:`~nbfl.launch.spawn`,
forked from a warm :mod:`~nbfl.launch.template`) and Dask workers
(:mod:`~nbfl.launch.on_dask`). Runs in the controller's kernel or the CLI's process,
and starts ``python -m nbfl.participant``; it imports the participant side but never
the faces (:mod:`nbfl.notebook`, :mod:`nbfl.jupyter`, :mod:`nbfl.cli`).
"""
