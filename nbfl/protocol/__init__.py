"""What the controller and the participants agree on; runs on both sides.

The names of tasks and meta keys, the wire format (a JSON header and one raw frame per
tensor, validated before any array is made), the codecs, the weights a model travels
as, the records a round leaves, join codes and the homomorphic-encryption layout. It
imports nothing else of nbfl (only :mod:`nbfl.errors`), so either side can read it
without pulling in the other.
"""
