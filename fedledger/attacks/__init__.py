"""Planted attackers, for the demo, the simulation, the tests and the benchmarks; never part of a real member.

- :mod:`fedledger.attacks.kinds`: each attack as a pure function (poisoning, copying, free-riding);
- :mod:`fedledger.attacks.member`: the update a planted member sends, and an attacking participant process;
- :mod:`fedledger.attacks.harness`: a federation with planted attackers, learning only (benchmarks).
"""
