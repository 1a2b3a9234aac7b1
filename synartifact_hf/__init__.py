"""synartifact-hf."""

import importlib.abc
import sys


def _register_artifact_classification() -> None:
    # Registration 1 of 3 (see synartifact_hf.pipeline.register_pipeline for all three and why each is
    # needed). Importing transformers.pipelines costs ~10 s (it loads torch), so `import synartifact_hf`
    # does not do it: the "artifact-classification" task is registered right after transformers.pipelines
    # is imported by someone else (e.g. `from transformers import pipeline; pipeline(...)`), or now if it
    # already was.
    module = sys.modules.get("synartifact_hf.pipeline")
    if module is None or hasattr(module, "register_pipeline"):
        # A partially imported synartifact_hf.pipeline (it imported transformers.pipelines itself)
        # registers at the end of its own import.
        importlib.import_module("synartifact_hf.pipeline").register_pipeline()


class _RegisterAfterTransformersPipelines(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "transformers.pipelines":
            return None
        sys.meta_path.remove(self)
        spec = next((s for f in sys.meta_path if (s := f.find_spec(name, path, target)) is not None), None)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            try:
                _register_artifact_classification()
            except ImportError as err:  # e.g. no torch: transformers itself must still import
                import warnings

                warnings.warn(f"synartifact-hf: 'artifact-classification' not registered ({err})", stacklevel=2)

        spec.loader.exec_module = exec_then_register
        return spec


if "transformers.pipelines" in sys.modules:
    _register_artifact_classification()
elif not any(isinstance(f, _RegisterAfterTransformersPipelines) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterTransformersPipelines())
