"""dead-drop-logger: every Dead Drop message, exactly once, in daily NDJSON files."""

__version__ = "0.1.0"
