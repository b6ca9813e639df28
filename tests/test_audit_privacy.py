"""Privacy probes on constructed model outputs and tiny models: separable and identical score distributions,
reference calibration, offline LiRA, zlib ratio, canary enumeration and ranking, split and report round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import tiny_model

from hfprune.audit.privacy import (
    PROBES,
    Canary,
    CanaryExposureProbe,
    CanaryInputs,
    CanaryLMConfig,
    CanarySet,
    ExampleStats,
    GeneralizationGap,
    LiRAAttack,
    MemberFinetuneConfig,
    MembershipInputs,
    MembershipSplit,
    PrivacyAuditConfig,
    PrivacyEntry,
    PrivacyProbe,
    PrivacyReport,
    audit_model,
    causal_lm_stats,
    classifier_stats,
    finetune_on_members,
    get_probe,
    insert_canaries,
    load_run,
    make_canaries,
    reference_stats,
    register_probe,
    train_canary_lm,
    train_disjoint_models,
    train_tokenizer,
    zlib_entropy,
)
from hfprune.audit.privacy.scores import sequence_log_perplexity_bits
from hfprune.audit.privacy.split import draw_split
from hfprune.audit.summaries import summarize_exposure, summarize_membership
from hfprune.errors import ConfigError

torch.set_num_threads(1)
FAST = {"n_resamples": 50, "seed": 0}
TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want "
        "of a wife. However little known the feelings or views of such a man may be on his first entering a "
        "neighbourhood, this truth is so well fixed in the minds of the surrounding families.")


def binary_stats(margins: np.ndarray) -> ExampleStats:
    """Statistics of a binary classifier whose true-label logit exceeds the other by ``margins``."""
    logits = np.stack([np.zeros_like(margins), margins], axis=1)
    return ExampleStats.from_logits(logits, np.ones(margins.size, dtype=np.int64))


def membership(n_members: int, n_nonmembers: int) -> np.ndarray:
    return np.r_[np.ones(n_members, bool), np.zeros(n_nonmembers, bool)]


# ------------------------------------------------------------------------------------------------------ statistics
def test_example_stats_from_logits_match_torch():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(50, 3)) * 4, rng.integers(0, 3, size=50)
    stats = ExampleStats.from_logits(logits, labels)
    lt, yt = torch.tensor(logits), torch.tensor(labels)
    probs = lt.softmax(-1)
    np.testing.assert_allclose(stats.loss, torch.nn.functional.cross_entropy(lt, yt, reduction="none"), rtol=1e-12)
    np.testing.assert_allclose(stats.confidence, probs[torch.arange(50), yt], rtol=1e-12)
    np.testing.assert_allclose(stats.entropy, -(probs * probs.log()).sum(-1), rtol=1e-10)
    true_p = stats.confidence
    np.testing.assert_allclose(stats.lira, np.log(true_p) - np.log1p(-true_p), rtol=1e-8)
    np.testing.assert_array_equal(stats.correct, (logits.argmax(1) == labels).astype(float))


def test_lira_statistic_stays_finite_when_the_true_class_is_certain():
    stats = ExampleStats.from_logits([[0.0, 60.0], [0.0, -60.0]], np.array([1, 1]))
    assert stats.lira == pytest.approx([60.0, -60.0])


def test_example_stats_reject_mismatched_lengths_and_bad_labels():
    with pytest.raises(ConfigError, match="ExampleStats.confidence: expected 3 values"):
        ExampleStats(loss=[1, 2, 3], confidence=[0.1, 0.2], entropy=[1, 1, 1], correct=[1, 1, 1], lira=[0, 0, 0])
    with pytest.raises(ConfigError, match=r"labels: expected values in \[0, 2\)"):
        ExampleStats.from_logits([[0.0, 1.0]], np.array([2]))


# ----------------------------------------------------------------------------------------------------- the probes
@pytest.mark.parametrize("attack", ["loss", "confidence", "entropy"])
def test_separable_scores_give_auc_one_and_full_tpr_at_low_fpr(attack):
    rng = np.random.default_rng(1)
    margins = np.r_[rng.uniform(4, 8, 300), rng.uniform(-2, 2, 1000)]  # members: confident and correct
    inputs = MembershipInputs(binary_stats(margins), membership(300, 1000), "constructed")
    result = get_probe(attack, **FAST)(inputs)
    assert result.attack == attack
    assert result.auc.value == 1.0
    assert result.tpr_at_1pct_fpr.value == 1.0
    # 1000 non-members give 1 expected false positive at 0.1% FPR: too few to resolve it (was reported as 1.0)
    assert math.isnan(result.tpr_at_0_1pct_fpr.value)
    assert result.balanced_accuracy.value == 1.0
    assert (result.n_members, result.n_nonmembers) == (300, 1000)
    assert result.roc_fpr[0] == 0.0 and result.roc_tpr[-1] == 1.0


@pytest.mark.parametrize("attack", ["loss", "confidence", "entropy"])
def test_identical_distributions_give_auc_near_one_half(attack):
    rng = np.random.default_rng(2)
    inputs = MembershipInputs(binary_stats(rng.normal(1.0, 2.0, 4000)), membership(2000, 2000), "constructed")
    result = get_probe(attack, **FAST)(inputs)
    assert abs(result.auc.value - 0.5) < 0.03  # 3 standard errors of the AUC at 2,000 + 2,000 examples
    assert 0.44 < result.auc.low < result.auc.value < result.auc.high < 0.56
    assert result.tpr_at_1pct_fpr.value < 0.04


def test_reference_calibration_removes_example_difficulty():
    """Examples differ in difficulty far more than members gain from training: the raw loss barely separates them,
    the loss difference against a reference model separates them perfectly."""
    rng = np.random.default_rng(3)
    difficulty = rng.uniform(-3, 3, 2000)  # margin of a model that never saw the examples
    member = membership(1000, 1000)
    target = binary_stats(difficulty + np.where(member, 1.0, 0.0))
    inputs = MembershipInputs(target, member, "constructed", reference=binary_stats(difficulty))
    calibrated = get_probe("reference", **FAST)(inputs)
    raw = get_probe("loss", **FAST)(inputs)
    assert calibrated.auc.value == 1.0 and calibrated.tpr_at_1pct_fpr.value == 1.0
    assert 0.55 < raw.auc.value < 0.7


def lira_inputs(seed: int = 4, k: int = 8) -> tuple[MembershipInputs, np.ndarray]:
    """Per-example OUT statistics spread widely; members sit 1.5 above their own OUT mean, non-members on it."""
    rng = np.random.default_rng(seed)
    n = 1000
    mu = rng.uniform(-5, 5, n)
    member = membership(500, 500)
    shadows = [binary_stats(mu + rng.normal(0, 0.2, n)) for _ in range(k)]
    target = binary_stats(mu + np.where(member, 1.5, 0.0) + rng.normal(0, 0.2, n))
    return MembershipInputs(target, member, "constructed", shadows=shadows), mu


@pytest.mark.parametrize("variance", ["global", "per_example"])
def test_lira_separates_members_that_a_global_threshold_cannot(variance):
    inputs, _ = lira_inputs()
    lira = LiRAAttack(variance=variance, **FAST)(inputs)
    loss = get_probe("loss", **FAST)(inputs)
    assert lira.auc.value > 0.99 and lira.tpr_at_1pct_fpr.value > 0.9
    assert loss.auc.value < 0.72  # 0.64 without noise: a 1.5 shift within a spread of 10


def test_lira_score_is_the_z_score_against_the_shadow_gaussian():
    inputs, _ = lira_inputs(k=3)
    out = np.stack([s.lira for s in inputs.shadows])
    expected = (inputs.target.lira - out.mean(0)) / out.std(0, ddof=1)
    np.testing.assert_allclose(LiRAAttack(variance="per_example").scores(inputs), expected, rtol=1e-10)


def test_probes_validate_their_inputs():
    stats = binary_stats(np.linspace(-1, 1, 6))
    with pytest.raises(ConfigError, match="reference: attack 'reference' needs a reference model"):
        get_probe("reference")(MembershipInputs(stats, membership(3, 3), "m"))
    with pytest.raises(ConfigError, match="shadows: attack 'lira' needs at least 2 shadow models, got 1"):
        get_probe("lira")(MembershipInputs(stats, membership(3, 3), "m", shadows=[stats]))
    with pytest.raises(ConfigError, match=r"shadows\[0\]: expected statistics of 6 examples"):
        get_probe("lira")(MembershipInputs(stats, membership(3, 3), "m", shadows=[stats.subset(np.arange(5))] * 2))
    with pytest.raises(ConfigError, match="is_member: expected 6 booleans with both"):
        get_probe("loss")(MembershipInputs(stats, np.ones(6, bool), "m"))
    with pytest.raises(ConfigError, match="zlib_bits: attack 'zlib_ratio' needs it"):
        get_probe("zlib_ratio")(MembershipInputs(stats.__class__(**{**stats.__dict__, "n_tokens": np.ones(6)}),
                                                 membership(3, 3), "m"))
    with pytest.raises(ConfigError, match="probe: expected one of"):
        get_probe("shokri")


def test_registry_lists_every_probe_and_rejects_duplicate_names():
    assert {"loss", "confidence", "entropy", "reference", "lira", "perplexity", "zlib_ratio",
            "canary_exposure"} <= set(PROBES)
    assert all(issubclass(cls, PrivacyProbe) for cls in PROBES.values())

    class Duplicate(PROBES["loss"]):
        name = "loss"

    with pytest.raises(ConfigError, match="probe name 'loss': already registered by LossThresholdAttack"):
        register_probe(Duplicate)


def test_probe_matches_summarize_membership_on_the_same_scores():
    inputs, _ = lira_inputs(k=2)
    result = get_probe("loss", n_resamples=20, seed=5)(inputs)
    direct = summarize_membership(-inputs.target.loss, inputs.is_member, model_name="constructed", sparsity=0.0,
                                  attack="loss", n_resamples=20, seed=5)
    assert result.to_dict() == direct.to_dict()


# -------------------------------------------------------------------------------------------------- extraction
def test_zlib_entropy_is_lower_for_repetitive_text():
    assert zlib_entropy("ha" * 200) < 0.2 * zlib_entropy(TEXT * 2)
    assert zlib_entropy("") == 8.0 * 8  # an empty zlib stream is 8 bytes


def test_zlib_ratio_ranks_by_perplexity_relative_to_compressibility():
    """Equal perplexities: the perplexity ranking is chance, the zlib ratio picks the high-information texts."""
    rng = np.random.default_rng(6)
    member_texts = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz "), 120)) for _ in range(20)]
    nonmember_texts = [("the cat sat " * 10)[: 100 + i] for i in range(20)]
    base = binary_stats(np.full(40, 1.0))
    stats = ExampleStats(**{**base.__dict__, "n_tokens": np.full(40, 30.0)}).with_texts(member_texts + nonmember_texts)
    inputs = MembershipInputs(stats, membership(20, 20), "constructed")
    assert get_probe("zlib_ratio", **FAST)(inputs).auc.value == 1.0
    assert get_probe("perplexity", **FAST)(inputs).auc.value == 0.5
    expected = -stats.loss / np.array([zlib_entropy(t) for t in member_texts + nonmember_texts])
    np.testing.assert_allclose(get_probe("zlib_ratio").scores(inputs), expected)


# --------------------------------------------------------------------------------------------------------- canaries
def test_make_and_insert_canaries():
    canaries = make_canaries([0, 3, 7], per_repetition=2, n_digits=5, seed=1)
    assert [c.repetitions for c in canaries.canaries] == [0, 0, 3, 3, 7, 7]
    assert len({c.secret for c in canaries.canaries}) == 6
    assert all(len(c.secret) == 5 and c.secret.isdigit() for c in canaries.canaries)
    assert canaries.space_size == 10**5
    corpus = [f"paragraph {i}" for i in range(50)]
    inserted = insert_canaries(corpus, canaries, seed=2)
    assert len(inserted) == 50 + 2 * 3 + 2 * 7
    assert [t for t in inserted if t.startswith("paragraph")] == corpus  # original order kept
    for canary in canaries.canaries:
        assert inserted.count(canaries.text(canary.secret)) == canary.repetitions
    assert canaries.text("12345") == "my secret number is 12345"


def test_canary_set_space_enumeration_sampling_and_round_trip(tmp_path):
    canaries = CanarySet([Canary("101", 5), Canary("000", 0)], n_digits=3, alphabet="01", separator=" ",
                         template="pin {secret}")
    assert canaries.space_size == 8
    assert list(canaries.enumerate_secrets()) == [format(i, "03b") for i in range(8)]
    assert canaries.text("101") == "pin 1 0 1"
    sample = canaries.sample_secrets(6, seed=0, exclude={"101", "000"})
    assert sorted(sample) == sorted(set(format(i, "03b") for i in range(8)) - {"101", "000"})
    canaries.save(tmp_path)
    assert CanarySet.load(tmp_path) == canaries
    with pytest.raises(ConfigError, match=r"canaries\[0\].secret: expected 3 characters of '01'"):
        CanarySet([Canary("102", 1)], n_digits=3, alphabet="01")
    with pytest.raises(ConfigError, match="n: expected at most 6 secrets"):
        canaries.sample_secrets(7, seed=0, exclude={"101", "000"})


@pytest.fixture(scope="module")
def byte_tokenizer():
    """A byte-level tokenizer with no merges: every character is one token."""
    return train_tokenizer([TEXT], vocab_size=258)


def rigged_lm(tokenizer, favoured: str, disfavoured: str):
    """A GPT-2 whose next-token distribution is the same everywhere and ranks ``favoured`` first and
    ``disfavoured`` last: every weight is 0 except the final layer-norm bias and two embedding rows."""
    model = tiny_model("gpt2", "causal_lm", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.transformer.wte.weight[tokenizer.convert_tokens_to_ids(favoured), 0] = 3.0
        model.transformer.wte.weight[tokenizer.convert_tokens_to_ids(disfavoured), 0] = -3.0
    return model.eval()


@pytest.mark.parametrize("k", [4, 10])
def test_canary_ranked_first_in_a_space_of_two_to_the_k_has_exposure_k(byte_tokenizer, k):
    model = rigged_lm(byte_tokenizer, "1", "0")
    canaries = CanarySet([Canary("1" * k, 10), Canary("0" * k, 0), Canary("1" * (k - 1) + "0", 1)], n_digits=k,
                         alphabet="01", template="pin {secret}")
    exposures = CanaryExposureProbe(method="exact").exposures(CanaryInputs(model, byte_tokenizer, canaries, "rigged"))
    # "1"*k is first of 2^k; "0"*k last; one 0 among ones ties with k-1 others at ranks 2..k+1: ties count
    # against the canary (Carlini et al. 2019), so its rank is k + 1
    tied = k - math.log2(k + 1)
    np.testing.assert_allclose(exposures, [k, 0.0, tied], atol=1e-9)
    results = CanaryExposureProbe(method="exact", n_resamples=0)(CanaryInputs(model, byte_tokenizer, canaries, "r"))
    assert [(r.repetitions, r.mean_exposure.value, r.method) for r in results] == [
        (0, pytest.approx(0.0, abs=1e-9), "exact"), (1, pytest.approx(tied), "exact"), (10, pytest.approx(k),
                                                                                        "exact")]
    assert results[2].space_size == 2**k


def test_exact_exposure_equals_brute_force_rank_on_a_random_tiny_lm(byte_tokenizer):
    model = tiny_model("gpt2", "causal_lm", seed=3, vocab_size=len(byte_tokenizer),
                       pad_token_id=byte_tokenizer.pad_token_id)
    canaries = CanarySet([Canary("042", 4), Canary("917", 0)], n_digits=3, template="my pin is {secret}.")
    exposures = CanaryExposureProbe().exposures(CanaryInputs(model, byte_tokenizer, canaries, "random"))
    secrets = list(canaries.enumerate_secrets())
    texts = [canaries.text(s) for s in secrets]
    one_by_one = np.array([sequence_log_perplexity_bits(model, byte_tokenizer, [t])[0] for t in texts[:50]])
    batched = sequence_log_perplexity_bits(model, byte_tokenizer, texts, batch_size=64)
    np.testing.assert_allclose(batched[:50], one_by_one, rtol=1e-9)
    for canary, value in zip(canaries.canaries, exposures, strict=True):
        rank = int(np.sum(batched <= batched[secrets.index(canary.secret)]))
        assert value == pytest.approx(math.log2(1000) - math.log2(rank))


def test_skewnorm_exposure_tracks_exact_exposure_on_a_random_tiny_lm(byte_tokenizer):
    """Carlini et al. 2019's distribution fit, from 500 of the 1,000 candidates, against exact enumeration."""
    model = tiny_model("gpt2", "causal_lm", seed=4, vocab_size=len(byte_tokenizer),
                       pad_token_id=byte_tokenizer.pad_token_id)
    canaries = CanarySet([Canary(f"{i:03d}", 0) for i in range(0, 1000, 97)], n_digits=3)
    inputs = CanaryInputs(model, byte_tokenizer, canaries, "random")
    exact = CanaryExposureProbe(method="exact").exposures(inputs)
    estimate = CanaryExposureProbe(method="skewnorm", n_samples=500).exposures(inputs)
    assert exact.max() > 5.0 and exact.min() < 0.1  # the canaries span the ranking
    np.testing.assert_allclose(estimate, exact, atol=0.4)
    with pytest.raises(ConfigError, match="'exact' enumerates all 1000 candidates"):
        CanaryExposureProbe(method="exact", exact_max_space=999).exposures(inputs)
    with pytest.raises(ConfigError, match="n_samples: expected at most 989"):
        CanaryExposureProbe(method="skewnorm", n_samples=990).exposures(inputs)


def test_skewnorm_exposure_of_a_memorised_canary_is_capped_at_log2_space(byte_tokenizer):
    model = rigged_lm(byte_tokenizer, "7", "3")
    canaries = CanarySet([Canary("777", 9), Canary("333", 0)], n_digits=3)
    estimate = CanaryExposureProbe(method="skewnorm", n_samples=500).exposures(
        CanaryInputs(model, byte_tokenizer, canaries, "rigged"))
    assert 7.0 < estimate[0] <= math.log2(1000) + 1e-9 and estimate[1] < 0.1


# ------------------------------------------------------------------------------------------------ LM statistics
def test_causal_lm_stats_mask_padding_and_fill_zlib(byte_tokenizer):
    model = tiny_model("gpt2", "causal_lm", seed=1, vocab_size=len(byte_tokenizer),
                       pad_token_id=byte_tokenizer.pad_token_id)
    texts = ["short one", "a somewhat longer sentence than the first", "mid length text"]
    together = causal_lm_stats(model, byte_tokenizer, texts, batch_size=3)
    alone = [causal_lm_stats(model, byte_tokenizer, [t], batch_size=1) for t in texts]
    np.testing.assert_allclose(together.loss, [s.loss[0] for s in alone], rtol=1e-9)
    np.testing.assert_allclose(together.entropy, [s.entropy[0] for s in alone], rtol=1e-9)
    np.testing.assert_array_equal(together.n_tokens, [len(t) for t in texts])  # BOS + one token per byte, minus 1
    np.testing.assert_allclose(together.lira, -together.loss)
    np.testing.assert_array_equal(together.zlib_bits, [zlib_entropy(t) for t in texts])
    # zlib measures what the perplexity scores: BOS + 9 bytes at max_length 10 (the first text fits exactly)
    cut = causal_lm_stats(model, byte_tokenizer, texts, batch_size=3, max_length=10)
    np.testing.assert_array_equal(cut.zlib_bits, [zlib_entropy(t[:9]) for t in texts])
    assert cut.n_tokens.tolist() == [9, 9, 9]
    byte_tokenizer.padding_side = "left"  # scoring pads on the right whatever the tokenizer's default
    try:
        np.testing.assert_array_equal(causal_lm_stats(model, byte_tokenizer, texts, batch_size=3).loss, together.loss)
    finally:
        byte_tokenizer.padding_side = "right"
    with torch.no_grad():  # the mean token NLL is the model's own LM loss
        ids = byte_tokenizer(texts[1], return_tensors="pt")["input_ids"]
        assert together.loss[1] == pytest.approx(model(input_ids=ids, labels=ids).loss.item(), rel=1e-5)


def test_classifier_stats_are_padding_invariant(byte_tokenizer):
    model = tiny_model("bert", vocab_size=len(byte_tokenizer), pad_token_id=byte_tokenizer.pad_token_id)
    texts, labels = ["good", "a rather bad film overall", "fine"], [1, 0, 1]
    together = classifier_stats(model, byte_tokenizer, texts, labels, batch_size=3, max_length=40)
    alone = [classifier_stats(model, byte_tokenizer, [t], [y], batch_size=1) for t, y in zip(texts, labels,
                                                                                                strict=True)]
    np.testing.assert_allclose(together.loss, [s.loss[0] for s in alone], rtol=1e-6)
    assert model.training is False


# -------------------------------------------------------------------------------------------------------- split
def make_split(**overrides) -> MembershipSplit:
    values = dict(dataset="glue/sst2", source_split="train", seed=3, member_ids=[4, 9], nonmember_ids=[1],
                  member_texts=["great", "awful"], nonmember_texts=["fine"], member_labels=[1, 0],
                  nonmember_labels=[1], max_length=32, extra={"label_names": ["negative", "positive"]})
    return MembershipSplit(**{**values, **overrides})


def test_split_round_trip_and_tamper_detection(tmp_path):
    split = make_split()
    path = split.save(tmp_path)
    loaded = MembershipSplit.load(tmp_path)
    assert loaded == split
    assert loaded.texts == ["great", "awful", "fine"] and loaded.labels == [1, 0, 1]
    np.testing.assert_array_equal(loaded.is_member, [True, True, False])
    payload = json.loads(path.read_text())
    payload["member_labels"] = [0, 0]
    path.write_text(json.dumps(payload))
    with pytest.raises(ConfigError, match="fingerprint does not match"):
        MembershipSplit.load(path)
    with pytest.raises(ConfigError, match="no membership split here"):
        MembershipSplit.load(tmp_path / "elsewhere")


def test_split_rejects_overlap_and_misaligned_examples():
    with pytest.raises(ConfigError, match="nonmember_ids: expected ids disjoint from member_ids"):
        make_split(nonmember_ids=[9])
    with pytest.raises(ConfigError, match="member_texts: expected 2 entries"):
        make_split(member_texts=["great"])
    with pytest.raises(ConfigError, match="unknown key"):
        MembershipSplit.from_dict({**make_split().to_dict(), "members": []})


def test_draw_split_is_disjoint_seeded_and_honours_exclusions():
    members, nonmembers = draw_split(100, 30, 20, seed=7, exclude=frozenset(range(10)))
    assert len(members) == 30 and len(nonmembers) == 20
    assert not set(members) & set(nonmembers) and min(members + nonmembers) >= 10
    assert (members, nonmembers) == draw_split(100, 30, 20, seed=7, exclude=frozenset(range(10)))
    with pytest.raises(ConfigError, match="expected at most 90"):
        draw_split(100, 60, 31, seed=0, exclude=frozenset(range(10)))


# --------------------------------------------------------------------------------------------- config and report
def test_audit_config_validates_and_round_trips(tmp_path):
    config = PrivacyAuditConfig(attacks=["loss", "lira"], n_resamples=10, lira_variance="per_example")
    config.save_pretrained(tmp_path)
    assert PrivacyAuditConfig.from_pretrained(tmp_path) == config
    with pytest.raises(ConfigError, match=r"PrivacyAuditConfig.attacks: expected names from .* got \['shokri'\]"):
        PrivacyAuditConfig(attacks=["shokri"])
    with pytest.raises(ConfigError, match="PrivacyAuditConfig.exposure_method"):
        PrivacyAuditConfig(exposure_method="guess")
    with pytest.raises(ConfigError, match="CanaryLMConfig.n_embd: expected a multiple of n_head=3"):
        CanaryLMConfig(n_embd=128, n_head=3)
    with pytest.raises(ConfigError, match="MemberFinetuneConfig.epochs: expected a positive number"):
        MemberFinetuneConfig(epochs=0)


def constructed_report() -> PrivacyReport:
    entries = []
    for sparsity, shift in ((0.0, 1.0), (0.5, 0.3)):
        rng = np.random.default_rng(int(10 * sparsity))
        scores = np.r_[rng.normal(shift, 1, 200), rng.normal(0, 1, 200)]
        gap = GeneralizationGap(0.99 - sparsity / 5, 0.8, 0.05 + sparsity, 0.6, 200, 200)
        result = summarize_membership(scores, membership(200, 200), model_name=f"m{sparsity}", sparsity=sparsity,
                                      attack="loss", n_resamples=20)
        exposure = summarize_exposure([12.0 - 4 * sparsity, 11.0], model_name=f"m{sparsity}", sparsity=sparsity,
                                      repetitions=100, space_size=10**4, method="exact", n_resamples=20)
        entries.append(PrivacyEntry(f"m{sparsity}", sparsity, gap, [result], [], [exposure]))
    return PrivacyReport(entries)


def test_report_round_trip_markdown_with_gap_and_plots(tmp_path):
    report = constructed_report()
    written = report.save(tmp_path)
    assert PrivacyReport.load(tmp_path).to_dict() == report.to_dict()
    markdown = written["markdown"].read_text()
    loss_row = next(line for line in markdown.splitlines() if line.startswith("| m0.0 | 0% | loss"))
    assert "0.990 / 0.800" in loss_row and "+0.550" in loss_row  # train/held-out accuracy and loss gap beside AUC
    assert "## Canary exposure" in markdown and "## Extraction signal" not in markdown
    for key in ("plot_auc", "plot_tpr", "plot_exposure", "plot_roc"):
        assert written[key].stat().st_size > 10_000
    gap = json.loads(written["json"].read_text())["entries"][1]["gap"]
    assert gap["accuracy_gap"] == pytest.approx(0.09) and gap["loss_gap"] == pytest.approx(0.05)


# ------------------------------------------------------------------------------------------------ end to end, tiny
def test_audit_model_on_a_tiny_lm_runs_every_lm_probe(byte_tokenizer):
    model = tiny_model("gpt2", "causal_lm", seed=2, vocab_size=len(byte_tokenizer),
                       pad_token_id=byte_tokenizer.pad_token_id)
    sentences = [TEXT[i:i + 40] for i in range(0, 240, 40)]
    split = MembershipSplit("constructed", "train", 0, [0, 1, 2], [3, 4, 5], sentences[:3], sentences[3:6],
                            max_length=32, task="causal-lm")
    canaries = CanarySet([Canary("12", 3), Canary("34", 0)], n_digits=2)
    entry = audit_model(model, byte_tokenizer, split, model_name="tiny", canaries=canaries,
                        config=PrivacyAuditConfig(n_resamples=10))
    assert [r.attack for r in entry.membership] == ["loss", "confidence", "entropy"]
    assert [r.attack for r in entry.extraction] == ["perplexity", "zlib_ratio"]
    assert [r.repetitions for r in entry.exposure] == [0, 3]
    assert entry.exposure[0].method == "exact" and entry.exposure[0].space_size == 100
    assert entry.sparsity == 0.0 and entry.gap.accuracy_kind == "next-token accuracy"
    assert entry.membership[0].auc.value == entry.extraction[0].auc.value  # same ranking, two names


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory, byte_tokenizer):
    """A tiny random BERT with the byte tokenizer, saved where finetune_on_members can load it."""
    directory = tmp_path_factory.mktemp("tiny-bert")
    model = tiny_model("bert", vocab_size=len(byte_tokenizer), pad_token_id=byte_tokenizer.pad_token_id)
    model.save_pretrained(directory)
    byte_tokenizer.save_pretrained(directory)
    return directory


def test_member_finetuning_records_its_split_and_shadows_feed_reference_and_lira(tiny_classifier_dir, tmp_path):
    config = MemberFinetuneConfig(model=str(tiny_classifier_dir), n_members=24, n_nonmembers=24, epochs=1.0,
                                  max_length=16, batch_size=8, threads=1, output_dir=str(tmp_path / "target"))
    run = finetune_on_members(config)
    loaded = load_run(run.output_dir)
    assert loaded.split == run.split and loaded.split.n_members == 24 and loaded.canaries is None
    assert set(loaded.split.labels) <= {0, 1} and loaded.split.extra["label_names"] == ["negative", "positive"]
    shadows = train_disjoint_models(finetune_on_members, config, run.split, k=2, output_root=tmp_path / "shadows")
    shadow_splits = [MembershipSplit.load(d) for d in shadows]
    audited = {*run.split.member_ids, *run.split.nonmember_ids}
    assert all(not set(s.member_ids) & audited for s in shadow_splits)
    assert shadow_splits[0].member_ids != shadow_splits[1].member_ids
    audit_config = PrivacyAuditConfig(n_resamples=10)
    shadow_stats = reference_stats(shadows, run.split, audit_config)
    entry = audit_model(loaded.model, loaded.tokenizer, loaded.split, model_name="tiny-bert", config=audit_config,
                        reference=shadow_stats[0], shadows=shadow_stats)
    assert [r.attack for r in entry.membership] == ["loss", "confidence", "entropy", "reference", "lira"]
    assert entry.extraction == [] and entry.exposure == []
    assert all(0.0 <= r.auc.value <= 1.0 for r in entry.membership)
    with pytest.raises(ConfigError, match="trained on 24 audited examples"):
        reference_stats([run.output_dir], run.split, audit_config)


def test_canary_lm_run_records_split_and_canaries(tmp_path):
    config = CanaryLMConfig(n_members=12, n_nonmembers=6, max_length=24, vocab_size=300, n_layer=1, n_embd=16,
                            n_head=2, canary_repetitions=[0, 5], canaries_per_repetition=1, epochs=1.0,
                            batch_size=8, threads=1,
                            output_dir=str(tmp_path / "lm"))
    run = train_canary_lm(config)
    loaded = load_run(run.output_dir)
    assert loaded.split == run.split and loaded.split.task == "causal-lm" and loaded.split.max_length == 24
    assert loaded.canaries == run.canaries and [c.repetitions for c in loaded.canaries.canaries] == [0, 5]
    assert run.n_train_examples == 12 + 5
    assert all(len(text) >= config.min_chars for text in loaded.split.texts)
    assert loaded.model.config.n_positions == 24 and len(loaded.tokenizer) == 300
    first = loaded.tokenizer("Emma")["input_ids"][0]
    assert first == loaded.tokenizer.bos_token_id  # every text starts with BOS, so its first word is scored


def test_privacy_sparsity_is_the_named_flops_measure_and_an_unknown_architecture_is_an_error():
    """Not a silent 0: ELECTRA is not in the architecture table, so its sparsity must be given."""
    from transformers import AutoModelForSequenceClassification, ElectraConfig

    from hfprune import PruningConfig, prune
    from hfprune.audit.privacy.audit import PRIVACY_SPARSITY_MEASURE, measured_sparsity
    from hfprune.pruning.stats import sparsity_report

    electra = AutoModelForSequenceClassification.from_config(ElectraConfig(
        vocab_size=99, hidden_size=32, embedding_size=32, num_hidden_layers=1, num_attention_heads=4,
        intermediate_size=48))
    with pytest.raises(ConfigError, match=r"^audit_model sparsity \(electra\): cannot be measured .* pass sparsity "
                                          r"explicitly$"):
        measured_sparsity(electra, "electra")
    model = tiny_model("bert")
    prune(model, PruningConfig(head_sparsity=0.5, ffn_sparsity=0.25, scoring="magnitude"))
    assert PRIVACY_SPARSITY_MEASURE == "flops"
    assert measured_sparsity(model, "pruned") == sparsity_report(model).flops_sparsity > 0
