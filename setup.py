"""Only what pyproject.toml cannot say: ship the top-level ``hub_cards/`` templates inside the wheel as
``synartifact_hf/hub_cards/`` (the layout keeps them at the repository root, and the package renders
them at run time). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["synartifact_hf", "synartifact_hf.*"]), "synartifact_hf.hub_cards"],
    package_dir={"synartifact_hf.hub_cards": "hub_cards"},
    package_data={"synartifact_hf.hub_cards": ["*.md"]},
)
