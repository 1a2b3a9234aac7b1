"""BERTScoreMatrix against bert_score itself, on the same local weights and layer.

Tolerance: 1e-5 absolute (float32; measured ~3e-7) against ``bert_score`` run on each pair alone.
``bert_score`` on a padded batch zero-fills the similarity of padded positions, which can only raise a
token's best match from a negative cosine to 0; so batched ``bert_score`` P and R are >= ours, and equal
to ours (within the tolerance) wherever it gave the same value as the lone pair.
"""

from __future__ import annotations

import pickle

import pytest
import torch

from synartifact_hf.bertscore import (
    MINILM,
    BERTScoreMatrix,
    IdfWeights,
    bert_score_baseline,
    idf_from_references,
    minilm_path,
)
from synartifact_hf.taxonomy import CLASSES

TOL = 1e-5
REFS = [c.phrase for c in CLASSES]
CANDS = [
    "1. Duplicated components.\n2. Omitted components.",
    "1. No artifacts.",
    "A photo of a cat sitting on a red sofa.",
    "asdf qwerty ###",
    "The image shows blurry regions and illegible text.",
    "1. Other artifacts. The horse has five legs and the sky is green.",
]


@pytest.fixture(scope="module")
def scorer():
    return BERTScoreMatrix(device="cpu")


@pytest.fixture(scope="module")
def reference_scorer():
    from bert_score import BERTScorer

    return BERTScorer(model_type=str(minilm_path()), num_layers=6, device="cpu")


def test_default_backbone_is_packaged_minilm_layer_6(scorer):
    assert scorer.model_name == MINILM and scorer.layer == 6
    assert (minilm_path() / "model.safetensors").is_file()


def test_matches_bert_score_pair_by_pair_and_batched(scorer, reference_scorer):
    ours = scorer.score(CANDS, REFS)
    flat_c = [c for c in CANDS for _ in REFS]
    flat_r = [r for _ in CANDS for r in REFS]
    single = torch.stack([torch.stack(reference_scorer.score([c], [r])).squeeze(1) for c, r in zip(flat_c, flat_r)])
    batched = torch.stack(reference_scorer.score(flat_c, flat_r), dim=1)
    mine = torch.stack([ours.precision.flatten(), ours.recall.flatten(), ours.f1.flatten()], dim=1)
    assert (mine - single).abs().max().item() <= TOL
    # Batched bert_score: equal, or raised by its zero-filled padding (never lowered) for P and R.
    assert (batched[:, :2] - mine[:, :2]).min().item() >= -TOL
    same = (batched - single).abs().amax(dim=1) <= TOL
    assert same.sum() >= len(flat_c) // 2
    assert (batched[same] - mine[same]).abs().max().item() <= TOL


def test_batch_invariant(scorer, monkeypatch):
    import synartifact_hf.bertscore as bertscore

    together = scorer.score(CANDS, REFS).f1
    alone = torch.cat([scorer.score([c], REFS).f1 for c in CANDS])
    shuffled = scorer.score(CANDS[::-1] + ["a much longer distractor sentence " * 8], REFS).f1[: len(CANDS)].flip(0)
    assert (together - alone).abs().max().item() <= TOL
    assert (together - shuffled).abs().max().item() <= TOL
    monkeypatch.setattr(bertscore, "_MAX_SIM_ELEMENTS", 1)  # forces the memory-capped, chunked matching
    chunked = scorer.score(CANDS, REFS).f1
    assert (together - chunked).abs().max().item() <= TOL


def test_references_cached_and_candidates_encoded_once(scorer):
    rows = []
    hook = scorer._encoder.register_forward_hook(lambda m, args, kwargs, out: rows.append(kwargs["input_ids"].shape[0]),
                                                 with_kwargs=True)
    try:
        refs = ["Localized blur", "No artifacts", "Illegible letters"]
        scorer.score(["x y", "x y", "1. No artifacts."], refs)
        first = sum(rows)
        rows.clear()
        scorer.score(["1. Localized blur.", "1. Localized blur."], refs)
        second = sum(rows)
    finally:
        hook.remove()
    assert first == 3 + 2  # references once, the duplicate candidate once
    assert second == 1  # references from the cache, one unique candidate


def test_layer_is_that_hidden_state(scorer):
    from transformers import AutoModel

    low = BERTScoreMatrix(num_layers=3, device="cpu")
    emb = low.embed(["Duplicated components"])
    full = AutoModel.from_pretrained(minilm_path(), use_safetensors=True).eval()
    ids = torch.tensor([low.tokenizer("Duplicated components")["input_ids"]])
    with torch.no_grad():
        hidden = full(ids, output_hidden_states=True).hidden_states[3][0]
    hidden = hidden / hidden.norm(dim=-1, keepdim=True)
    assert torch.allclose(emb.emb[0], hidden, atol=1e-5)
    with pytest.raises(ValueError, match="between 0 and 6"):
        BERTScoreMatrix(num_layers=7).score(["a"], ["b"])


def test_empty_candidate_scores_zero(scorer):
    s = scorer.score(["", "   ", "1. No artifacts."], REFS)
    assert s.f1[:2].abs().max() == 0 and s.precision[:2].abs().max() == 0 and s.recall[:2].abs().max() == 0
    assert s.f1[2].max() > 0.5
    assert scorer.score([], REFS).f1.shape == (0, len(REFS))


def test_idf_matches_bert_score_with_same_dict(scorer, reference_scorer):
    # bert_cos_score_idf is what bert_score.score(idf=dict) runs, here with the model already loaded.
    from bert_score.utils import bert_cos_score_idf

    refs = REFS[:5]
    idf = idf_from_references(refs, scorer.tokenizer)
    assert isinstance(idf, IdfWeights) and idf[scorer.tokenizer.cls_token_id] == 0.0
    assert pickle.loads(pickle.dumps(idf)) == idf and pickle.loads(pickle.dumps(idf))[10**6] == idf.default
    ours = BERTScoreMatrix(idf=True, device="cpu").score(CANDS[:2], refs)
    for i, c in enumerate(CANDS[:2]):
        for j, r in enumerate(refs):
            p, rr, f = bert_cos_score_idf(reference_scorer._model, [r], [c], reference_scorer._tokenizer, idf,
                                          device="cpu")[0]
            got = (ours.precision[i, j], ours.recall[i, j], ours.f1[i, j])
            assert max(abs(a.item() - b.item()) for a, b in zip(got, (p, rr, f))) <= TOL


def test_baseline_rescaling(scorer):
    raw = scorer.score(CANDS, REFS)
    b = (0.1, 0.2, 0.3)
    scaled = BERTScoreMatrix(baseline=b, device="cpu").score(CANDS, REFS)
    for i, name in enumerate(("precision", "recall", "f1")):
        expected = (getattr(raw, name) - b[i]) / (1 - b[i])
        assert torch.allclose(getattr(scaled, name), expected, atol=1e-6)
    import os

    import bert_score
    import pandas as pd

    # bert_score.score(rescale_with_baseline=True) reads the same row this way.
    path = os.path.join(os.path.dirname(bert_score.__file__), "rescale_baseline", "en", "roberta-large.tsv")
    expected = pd.read_csv(path).iloc[17].to_numpy()[1:].astype(float)
    assert bert_score_baseline("roberta-large", 17) == pytest.approx(tuple(expected), abs=1e-7)
    with pytest.raises(FileNotFoundError, match="ships no baseline"):
        BERTScoreMatrix(baseline="bert_score", device="cpu").score(["a"], ["b"])
    with pytest.raises(ValueError, match="baseline"):
        BERTScoreMatrix(baseline=(0.1, 0.2))


def test_pickle_is_cheap_and_equivalent(scorer):
    before = scorer.score(CANDS[:2], REFS).f1
    blob = pickle.dumps(scorer)
    assert len(blob) < 10_000
    assert torch.allclose(pickle.loads(blob).score(CANDS[:2], REFS).f1, before, atol=TOL)


def test_bad_input_errors(scorer):
    with pytest.raises(TypeError, match="not a single string"):
        scorer.score("1. No artifacts.", REFS)
    with pytest.raises(TypeError, match=r"candidates\[1\] is int"):
        scorer.score(["a", 3], REFS)
    with pytest.raises(ValueError, match="references must not be empty"):
        scorer.score(["a"], [])
    with pytest.raises(ValueError, match="idf has no weight"):
        BERTScoreMatrix(idf={1: 1.0}, device="cpu").score(["a b"], ["c"])


@pytest.fixture(scope="module")
def tiny_roberta_path(tmp_path_factory):
    """A 2-layer RoBERTa with a byte-level BPE tokenizer trained here: the code path of 'roberta-large'."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([c.option_text for c in CLASSES] + CANDS, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    fast = RobertaTokenizer(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                            unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=128)
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=fast.pad_token_id)
    out = tmp_path_factory.mktemp("tiny-roberta")
    RobertaModel(config).eval().save_pretrained(out)
    fast.save_pretrained(out)
    return out


def test_roberta_tokenization_path_matches_bert_score(tiny_roberta_path):
    from bert_score import BERTScorer
    from bert_score.utils import sent_encode
    from transformers import AutoTokenizer

    from synartifact_hf.bertscore import _encode

    ours = BERTScoreMatrix(tiny_roberta_path, num_layers=2, device="cpu")
    theirs = BERTScorer(model_type=str(tiny_roberta_path), num_layers=2, device="cpu")
    # bert_score encodes RoBERTa text with add_prefix_space=True, a call-time kwarg transformers 5 ignores;
    # a tokenizer loaded with the option gives the ids bert_score produces on transformers 4.
    assert sent_encode(theirs._tokenizer, "No artifacts")[1] != _encode(ours.tokenizer, ["No artifacts"])[0][1]
    theirs._tokenizer = AutoTokenizer.from_pretrained(tiny_roberta_path, add_prefix_space=True)
    assert _encode(ours.tokenizer, CANDS) == [sent_encode(theirs._tokenizer, c) for c in CANDS]
    s = ours.score(CANDS[:3], REFS[:4])
    for i, c in enumerate(CANDS[:3]):
        for j, r in enumerate(REFS[:4]):
            p, rr, f = theirs.score([c], [r])
            assert abs(s.precision[i, j] - p.item()) <= TOL and abs(s.recall[i, j] - rr.item()) <= TOL
            assert abs(s.f1[i, j] - f.item()) <= TOL
