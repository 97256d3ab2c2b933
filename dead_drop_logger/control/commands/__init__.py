"""The commands of ``dead-drop-logger``, one module per capability (``control/cli.py``
keeps the group that holds them)."""
