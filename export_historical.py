#!/usr/bin/env python3
"""One-time historical export: ``dead-drop-logger export`` under its old name.

    python export_historical.py [--db PATH] [--log-dir DIR] [--since DATE] [--until DATE]

Kept for the scripts and habits that call it: the same command (options, settings,
behaviour) as ``dead-drop-logger export``, whose code is in the package
(``dead_drop_logger/control/commands/export.py`` and ``dead_drop_logger/record/export.py``).
"""

from __future__ import annotations

from dead_drop_logger.control.commands.export import script

main = script("export_historical.py")

if __name__ == "__main__":
    main()
