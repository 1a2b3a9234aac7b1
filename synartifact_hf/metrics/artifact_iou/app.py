import os

import evaluate
from evaluate.utils import launch_gradio_widget

# Load by file path, not by folder: a Space's folder is not named after the module.
module = evaluate.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifact_iou.py"))
launch_gradio_widget(module)
