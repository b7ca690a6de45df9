"""ZeroMQ on both sides: the IO threads that own the sockets, their guards, the local
control socket the Federation panel talks to, and the kits that make connections
CurveZMQ. It imports only :mod:`nbfl.protocol`; the controller's process and every
participant's process each run one IO thread from here.
"""
