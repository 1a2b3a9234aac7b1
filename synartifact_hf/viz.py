"""Old name of :mod:`synartifact_hf.drawing` (artifact boxes drawn on images, charts), kept because the
README's Tour listed ``synartifact_hf.viz`` and user code may import it. Both names are the same module
object. New code imports :mod:`synartifact_hf.drawing`.
"""

import sys

from . import drawing

sys.modules[__name__] = drawing
