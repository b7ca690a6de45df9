"""SCAFFOLD (Karimireddy et al., 2020): control variates correct each client's drift.

The controller's half (:mod:`.server`) sends ``x`` and ``c`` and updates ``c`` from the
clients' changes of theirs; the site's half (:mod:`.client`, numpy; :mod:`.client_torch`
for a torch loop) keeps ``c_i``, corrects every gradient by ``c - c_i`` and sends back
``y - x`` and its ``dc_i``. What both read:
"""

RUN = "scaffold_run"  # meta key: a SCAFFOLD run's id; a new one tells clients to reset their variates
C = "scaffold.c/"  # tensor prefix: the controller's control variate, sent with a task
DC = "scaffold.dc/"  # tensor prefix: a client's change of its variate, sent with its result
