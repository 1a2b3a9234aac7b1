"""Old name of :mod:`synartifact_hf.instructions` (the classifier's instructions, answer formatters and
box normalization), kept because user code and the README imported ``synartifact_hf.prompts``.

Both names are the same module object, so every name (and any later change) is shared. New code
imports :mod:`synartifact_hf.instructions`; the RL prompt functions are :mod:`synartifact_hf.rl.prompt_functions`.
"""

import sys

from . import instructions

sys.modules[__name__] = instructions
