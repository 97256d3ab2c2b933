"""``serve``: the live dashboard in the browser and the HTTP API (``/v1``), over the
read side. Imported only by the ``serve`` command; its web stack is the ``[serve]`` extra."""
