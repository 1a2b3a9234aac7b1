"""Per-option likelihoods: how likely the model is to answer with each of the 14 options.

For an image and the instruction, each option k gets the continuation ``c_k = "1. <Option k>."``,
rendered exactly as the chat template writes the start of an assistant answer (for LLaVA-1.5,
``" 1. Duplicated components."`` after ``"ASSISTANT:"``). Its score is computed in two steps:

1. ``mean_logprob[k] = (1 / |c_k|) * sum_j log p(c_k[j] | image, prompt, c_k[:j])`` -- the average
   natural-log probability per token of the continuation under the model (teacher forcing), where
   ``|c_k|`` counts the continuation's tokens. Averaging per token keeps long option names from being
   penalized for their length alone.
2. ``scores[k] = exp(mean_logprob[k]) / sum_j exp(mean_logprob[j])`` -- a softmax over the 14 options.

So ``scores`` is a distribution over the 14 options (it sums to 1) that ranks them by how readily the
model would *start* its answer with each one. It is not a calibrated probability that the artifact is
present: the paper's answers list several options, and the continuation only covers the first item
(there is no end-of-answer token in ``c_k``). ``scores["No artifacts"]`` is a smooth "looks clean"
signal usable as a reward; a threshold on a score gives a multi-label decision whose operating point
must be chosen on labelled data (ROC curves).

Cost: the image and instruction (the prefix, ~600 tokens for LLaVA-1.5) are encoded once; the 14
continuations then run as one batch of 14 rows that attend to the prefix's key/value cache, expanded
to 14 rows. When the pipeline also generates, the prefix cache and the first-token logits come from
``generate()`` itself, so scores add only the continuation pass.

>>> option_answers()[0], option_answers()[-1]
('1. Illegible letters.', '1. No artifacts.')
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from .instructions import (
    classification_instruction,
    conversation,
    format_classification_answer,
    render_prompt,
)
from .taxonomy import CLASSES, NAMES

__all__ = [
    "option_answers",
    "continuation_texts",
    "encode_continuations",
    "OptionScorer",
    "scores_from_logprobs",
]

# Expanded caches for the continuation pass are built in chunks of images so that at most this many
# bytes of expanded key/value cache exist at once (a LLaVA-1.5-7B prefix of ~600 tokens is ~4.4 GB
# per image once expanded to 14 rows in bf16; tiny models fit a whole batch in one chunk).
DEFAULT_CACHE_BUDGET_BYTES = 4 * 1024**3


def option_answers() -> list[str]:
    """The 14 one-item answers ``"1. <Option>."``, in taxonomy order."""
    return [format_classification_answer([cls.id]) for cls in CLASSES]


def continuation_texts(processor, instruction: str | None = None) -> tuple[str, list[str]]:
    """``(prompt, [continuation_k])``: the generation prompt and, for each option, the text the chat
    template puts after it when the assistant answers ``"1. <Option>."`` (end-of-turn tokens excluded).

    Falls back to the bare answer when the template does not render a prompt/answer pair that
    extends the generation prompt.
    """
    if instruction is None:
        instruction = classification_instruction()
    prompt = render_prompt(processor, instruction)
    owner = processor if getattr(processor, "chat_template", None) else processor.tokenizer
    continuations = []
    for answer in option_answers():
        full = owner.apply_chat_template(conversation(instruction, answer), tokenize=False)
        end = full.find(answer, len(prompt)) if full.startswith(prompt) else -1
        continuations.append(full[len(prompt): end + len(answer)] if end >= 0 else answer)
    return prompt, continuations


def encode_continuations(tokenizer, prompt: str, continuations: Sequence[str]) -> list[list[int]]:
    """Token ids of each continuation as they follow ``prompt``.

    The prompt and continuation are tokenized together, so a merge across the boundary (e.g. a space
    that belongs to the next word's token) is tokenized as the model would see it in generation; when
    the joint tokenization does not start with the prompt's own tokens, the continuation is tokenized
    alone.
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    out = []
    for text in continuations:
        joint = tokenizer(prompt + text, add_special_tokens=False)["input_ids"]
        if joint[: len(prompt_ids)] == prompt_ids and len(joint) > len(prompt_ids):
            ids = joint[len(prompt_ids):]
        else:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"Continuation {text!r} encodes to no tokens")
        out.append(list(ids))
    return out


def scores_from_logprobs(mean_logprobs) -> list[dict[str, float]]:
    """Softmax over the 14 options of ``mean_logprobs`` (shape ``[batch, 14]``) -> one
    ``{option name: score}`` dict per image, in taxonomy order."""
    import torch

    probs = torch.softmax(mean_logprobs.float(), dim=-1)
    return [{name: float(p) for name, p in zip(NAMES, row)} for row in probs.tolist()]


def _cache_kwarg(model) -> str:
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _output_cache(outputs):
    cache = getattr(outputs, "cache", None)
    return cache if cache is not None else getattr(outputs, "past_key_values", None)


def _uses_mrope(model) -> bool:
    text_config = model.config.get_text_config(decoder=True)
    rope = getattr(text_config, "rope_parameters", None) or getattr(text_config, "rope_scaling", None) or {}
    return "mrope_section" in rope


class OptionScorer:
    """Mean per-token log-probabilities of the 14 option continuations, sharing the prefix cache.

    Args:
        model: an ``AutoModelForImageTextToText`` model.
        continuation_ids: token ids of the 14 continuations (:func:`encode_continuations`).
        pad_token_id: id used to right-pad the continuations (masked out).
        cache_budget_bytes: cap on the key/value cache copies held at once (``DEFAULT_CACHE_BUDGET_BYTES``).
        strategy: how the 14 continuations share the prefix in their one forward pass:
            ``"packed"``: per image, the 14 continuations are concatenated into one row after the prefix,
            with a block-diagonal causal 4D attention mask (each continuation sees the prefix and its own
            earlier tokens only) and positions restarting after the prefix for each continuation; the
            prefix cache is used as is (no copies per option).
            ``"expanded"``: the prefix cache is repeated to 14 rows per image and each row runs one
            right-padded continuation; needed for flash attention (no custom masks) and M-RoPE models.
            ``"auto"`` (default) picks packed when possible. Both give the same numbers.
    """

    def __init__(self, model, continuation_ids: Sequence[Sequence[int]], pad_token_id: int,
                 cache_budget_bytes: int = DEFAULT_CACHE_BUDGET_BYTES, strategy: str = "auto"):
        import torch

        if len(continuation_ids) != len(CLASSES):
            raise ValueError(f"Expected {len(CLASSES)} continuations, got {len(continuation_ids)}")
        if strategy not in ("auto", "packed", "expanded"):
            raise ValueError(f"strategy must be 'auto', 'packed' or 'expanded', got {strategy!r}")
        if strategy == "auto":
            attn = getattr(model.config, "_attn_implementation", None) or "sdpa"
            # Custom 4D masks need eager/sdpa-style attention and 1D positions.
            strategy = "expanded" if _uses_mrope(model) or "flash" in attn or "flex" in attn else "packed"
        self.strategy = strategy
        self.model = model
        self.cache_budget_bytes = cache_budget_bytes
        self.flat_ids = torch.tensor([i for ids in continuation_ids for i in ids], dtype=torch.long)
        lengths = [len(ids) for ids in continuation_ids]
        width = max(lengths)
        self.lengths = torch.tensor(lengths)
        self.ids = torch.full((len(lengths), width), pad_token_id, dtype=torch.long)
        for k, ids in enumerate(continuation_ids):
            self.ids[k, : len(ids)] = torch.tensor(ids)
        self.mask = (torch.arange(width)[None, :] < self.lengths[:, None]).long()

    def prefix(self, model_inputs: dict):
        """Encode image + prompt once: ``(cache, last_logits, attention_mask)`` for :meth:`from_prefix`."""
        import torch

        kwargs = dict(model_inputs)
        if not _uses_mrope(self.model) and "position_ids" not in kwargs:
            # Same positions as generate() gives a left-padded prompt (pads do not shift the text).
            mask = kwargs["attention_mask"]
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            outputs = self.model(**kwargs, use_cache=True)
        return _output_cache(outputs), outputs.logits[:, -1, :], model_inputs["attention_mask"]

    def __call__(self, model_inputs: dict):
        """``[batch, 14]`` mean log-probs for processor outputs (one forward for the prefix, then the
        continuation pass)."""
        return self.from_prefix(*self.prefix(model_inputs))

    def from_prefix(self, cache, last_logits, prefix_mask, rows=None):
        """``[len(rows), 14]`` mean log-probs given the prefix cache of a batch.

        Args:
            cache: the key/value cache of the prefix batch. It may be longer than the prefix (e.g. after
                ``generate()``): only its first ``prefix_mask.shape[1]`` positions are read. It is not
                modified.
            last_logits: logits at the last prefix position, ``[batch, vocab]``.
            prefix_mask: the prefix attention mask ``[batch, prefix_len]`` (left padding allowed).
            rows: batch indices to score (default: all), e.g. the images that share one instruction.
        """
        import torch

        rows = torch.arange(prefix_mask.shape[0]) if rows is None else torch.as_tensor(rows, dtype=torch.long)
        rows = rows.to(last_logits.device)
        first = torch.log_softmax(last_logits[rows].float(), dim=-1)[:, self.ids[:, 0].to(last_logits.device)]
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        prefix_mask = prefix_mask.to(last_logits.device)
        run = self._packed if self.strategy == "packed" else self._expanded
        total = first + run(layers, prefix_mask, rows)
        return total / self.lengths.to(total.device)[None, :].float()

    def _chunks(self, layers, prefix_len: int, rows, copies_per_image: int):
        per_image = sum(k[:1, :, :prefix_len].nbytes + v[:1, :, :prefix_len].nbytes for k, v in layers)
        chunk = max(1, min(len(rows), self.cache_budget_bytes // max(per_image * copies_per_image, 1)))
        return [rows[start: start + chunk] for start in range(0, len(rows), chunk)]

    def _cache(self, layers, select, prefix_len: int):
        from transformers import DynamicCache

        return DynamicCache(
            ddp_cache_data=[(k[select, :, :prefix_len], v[select, :, :prefix_len]) for k, v in layers],
            config=self.model.config,
        )

    def _packed(self, layers, prefix_mask, rows):
        """Sum of log-probs of tokens 2.. of each continuation, ``[rows, 14]``, one packed row per image."""
        import torch

        device = prefix_mask.device
        prefix_len = prefix_mask.shape[1]
        lengths = self.lengths.tolist()
        total = sum(lengths)
        ids = self.flat_ids.to(device)
        option = torch.repeat_interleave(torch.arange(len(lengths)), self.lengths).to(device)
        offset = torch.cat([torch.arange(n) for n in lengths]).to(device)
        # Token i may see token j (both in the packed continuations) iff same option and j <= i.
        own = (option[:, None] == option[None, :]) & (offset[None, :] <= offset[:, None])
        # Targets: packed token i predicts token i + 1 when both belong to the same option.
        predicts = torch.cat([option[:-1] == option[1:], torch.tensor([False], device=device)])
        dtype = self.model.dtype if self.model.dtype.is_floating_point else torch.float32
        blocked = torch.finfo(dtype).min
        out = []
        for part in self._chunks(layers, prefix_len, rows, copies_per_image=1):
            n = len(part)
            visible = torch.cat([prefix_mask[part].bool()[:, None, :].expand(n, total, prefix_len),
                                 own[None].expand(n, total, total)], dim=-1)
            mask = torch.zeros(n, 1, total, prefix_len + total, dtype=dtype, device=device)
            mask.masked_fill_(~visible[:, None], blocked)
            positions = prefix_mask[part].sum(-1, keepdim=True) + offset[None, :]
            with torch.no_grad():
                logits = self.model(
                    input_ids=ids[None].expand(n, total), attention_mask=mask, position_ids=positions,
                    **{_cache_kwarg(self.model): self._cache(layers, part, prefix_len)}, use_cache=True,
                ).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[1:][None, :, None].expand(n, -1, 1))[..., 0]
            logp = logp * predicts[None, :-1]
            sums = torch.zeros(n, len(lengths), device=device).index_add_(1, option[1:], logp)
            out.append(sums)
            del logits
        return torch.cat(out, dim=0)

    def _expanded(self, layers, prefix_mask, rows):
        """Sum of log-probs of tokens 2.. of each continuation, ``[rows, 14]``, 14 cache rows per image."""
        import torch

        device = prefix_mask.device
        prefix_len = prefix_mask.shape[1]
        num_options, width = self.ids.shape
        ids = self.ids.to(device)
        cont_mask = self.mask.to(device)
        mrope = _uses_mrope(self.model)
        rest = []
        for part in self._chunks(layers, prefix_len, rows, copies_per_image=num_options):
            n = len(part)
            select = part.repeat_interleave(num_options)
            attention = torch.cat([prefix_mask[select], cont_mask.repeat(n, 1)], dim=1)
            kwargs = {
                "input_ids": ids.repeat(n, 1),
                "attention_mask": attention,
                _cache_kwarg(self.model): self._cache(layers, select, prefix_len),
                "use_cache": True,
            }
            if not mrope:
                # Positions continue from each prefix's real (unpadded) length, as in generate().
                kwargs["position_ids"] = (prefix_mask[select].sum(-1, keepdim=True)
                                          + torch.arange(width, device=device)[None, :])
            with torch.no_grad():
                logits = self.model(**kwargs).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids.repeat(n, 1)[:, 1:, None])[..., 0]
            logp = logp * cont_mask[:, 1:].repeat(n, 1)
            rest.append(logp.sum(-1).view(n, num_options))
            del logits
        return torch.cat(rest, dim=0)
