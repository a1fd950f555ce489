"""fedledger's apps: the command line, the demo, the simulation, the audit and the attack harness.

Apps stand on every layer below (roles, core, leaves); nothing below imports them.
"""

__version__ = "0.1.0"
