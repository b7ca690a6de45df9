"""JupyterLab's server side of the Federation panel: routes that relay the panel's
requests to the local control sockets of the kernels' controllers and clients. Runs
in the Jupyter server's process, never in a kernel; the panel's TypeScript is in
``extensions/federation``.
"""
