"""Facts about the SynArtifact paper itself, next to its taxonomy and prompts: how to cite it.

Everything that writes a card (dataset, model, DDPO LoRA) cites the paper with this one entry, so
training and DDPO need not import the dataset code to get it.

>>> print(CITATION.splitlines()[0])
@article{cao2024synartifact,
>>> ARXIV_URL
'https://arxiv.org/abs/2402.18068'
"""

from __future__ import annotations

__all__ = ["ARXIV_ID", "ARXIV_URL", "CITATION", "TITLE"]

TITLE = "SynArtifact: Classifying and Alleviating Artifacts in Synthetic Images via Vision-Language Model"
ARXIV_ID = "2402.18068"
ARXIV_URL = f"https://arxiv.org/abs/{ARXIV_ID}"
CITATION = """@article{cao2024synartifact,
  title   = {SynArtifact: Classifying and Alleviating Artifacts in Synthetic Images via Vision-Language Model},
  author  = {Cao, Bin and Yuan, Jianhao and Liu, Yexin and Li, Jian and Sun, Shuyang and Liu, Jing and Zhao, Bo},
  journal = {arXiv preprint arXiv:2402.18068},
  year    = {2024}
}"""
