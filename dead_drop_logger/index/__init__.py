"""The derived index beside the logs: a cache that makes every reader answer in
milliseconds; deleting it loses nothing, the files stay the source of truth."""
