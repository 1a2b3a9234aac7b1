"""The end-to-end demo (``synartifact-hf demo``, ``make demo``): one module per step, the command in
:mod:`.cli_demo` (the package's ``cli_<command>`` convention)."""
