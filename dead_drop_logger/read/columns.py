"""The names of the per-agent numbers, shared by ``stats``, ``report`` and ``agents``.

Why a module of its own: the same quantity must have the same column name in every
table (and two different quantities two different names: broadcasts an agent sent are
not the broadcasts it received), and ``agents`` must not load the statistics' modules
to learn them.
"""

from __future__ import annotations

DIRECT_RECV = "direct recv"  # direct messages received (not CC copies)
BCAST_SENT = "bcast sent"  # broadcasts (to_agent "all") sent
BCAST_RECV = "bcast recv"  # broadcasts received: everyone else's
CC_RECV = "CC recv"  # CC copies received (the lead's)
