"""Generator evaluation: how often does a text-to-image model make artifacts, class by class, and did
fine-tuning change that? ``synartifact-hf eval-generator`` (generate -> classify -> rates with bootstrap
intervals over prompts) and ``synartifact-hf compare-generators`` (paired by prompt and seed: differences,
McNemar's exact test, Holm).

Modules: :mod:`.prompt_sets` (where prompts come from), :mod:`.sampling` (diffusers pipelines, per-image
seeds), :mod:`.run` (the resumable multi-process loop), :mod:`.folder` (the output folder, a Hub-ready
dataset), :mod:`.report` (rates), :mod:`.compare` (paired comparison), :mod:`.statistics` (bootstrap,
McNemar, Holm), :mod:`.figures`.
"""
