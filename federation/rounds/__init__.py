"""One round, derived: :func:`federation.rounds.derive.derive_round` and the parts it runs in order.

:mod:`.validation` (each submission against its on-chain record), :mod:`.defences` (copies
and free-riders), :mod:`.strategies` (aggregation), :mod:`.scoring` (contribution scores),
:mod:`.assessment` (defences, strategy and scoring of one round's accepted updates).
"""
