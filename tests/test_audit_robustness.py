"""hfprune.audit.robustness on tiny models and constructed attack logs, against values computed by hand.

Tests that run TextAttack itself are marked ``audit``; the others import neither textattack nor real weights.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import tiny_model

from hfprune.audit.results import MetricWithCI
from hfprune.audit.robustness import (
    RECIPES,
    AttackLog,
    AttackRecord,
    AttackSample,
    AuditConfig,
    AuditTarget,
    ClassifierPredictor,
    LoyaltyProbe,
    MissingResourceError,
    RecipeSpec,
    RobustnessAudit,
    RobustnessReport,
    TransferProbe,
    TransferResult,
    draw_sample,
    get_recipe,
    register_recipe,
    resolve_recipe,
    robustness_result_from_dict,
    transfer_rate,
)
from hfprune.audit.robustness.report import PLOTS, rows_to_csv
from hfprune.audit.summaries import summarize_loyalty
from hfprune.errors import ConfigError, DataError

WORDS = ["a", "an", "the", "good", "great", "bad", "dull", "movie", "film", "plot", "is", "was", "not", "very"]


def word_tokenizer():
    """A fast word-level tokenizer over WORDS (ids < 99, the tiny models' vocabulary), [CLS] x [SEP] templates."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]")


class KeywordClassifier(torch.nn.Module):
    """Class 1 iff one of ``keywords`` is in the input: logits (0, margin), else (margin, 0). Records batch sizes."""

    def __init__(self, tokenizer, keywords=("good",), margin=2.0):
        super().__init__()
        self.register_buffer("keyword_ids", torch.tensor(tokenizer.convert_tokens_to_ids(list(keywords))))
        self.margin = torch.nn.Parameter(torch.tensor(float(margin)))
        self.config = SimpleNamespace(num_labels=2)
        self.batch_sizes: list[int] = []

    def forward(self, input_ids, attention_mask=None, **_):
        self.batch_sizes.append(int(input_ids.shape[0]))
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        positive = (torch.isin(input_ids, self.keyword_ids) & mask).any(dim=1).float()
        logits = torch.stack([(1 - positive) * self.margin, positive * self.margin], dim=1)
        return SimpleNamespace(logits=logits)


@pytest.fixture(scope="module")
def tok():
    return word_tokenizer()


# ---------------------------------------------------------------------------------------------------- predictor
def test_predictor_returns_the_models_probabilities_in_batches(tok):
    model = tiny_model("bert")
    texts = ["a good movie", "the plot was not very good at all", "bad", "an dull film is dull", "great"]
    predictor = ClassifierPredictor(model, tok, batch_size=2)
    probs = predictor.predict_proba(texts)
    assert predictor.num_calls == 3  # 2 + 2 + 1
    with torch.no_grad():  # one text at a time, no padding: what batching with padding must reproduce
        expected = [torch.softmax(model(**tok(t, return_tensors="pt")).logits, -1)[0].numpy() for t in texts]
    np.testing.assert_allclose(probs, np.stack(expected), atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(predictor.predict(texts), np.stack(expected).argmax(axis=1))


def test_predictor_uses_eval_mode_and_restores_training(tok):
    model = tiny_model("bert")
    for module in model.modules():  # the fixture turns dropout off; turn it on so training mode would show
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.5
    model.train()
    predictor = ClassifierPredictor(model, tok)
    first, second = predictor(["a good movie"] * 3), predictor(["a good movie"] * 3)
    np.testing.assert_array_equal(first, second)
    assert model.training is True
    assert all(p.grad is None for p in model.parameters())


def test_predictor_on_a_compacted_pruned_model(tok):
    from hfprune import PruningConfig, prune

    pruned = copy.deepcopy(tiny_model("bert"))
    prune(pruned, PruningConfig(head_sparsity=0.5, ffn_sparsity=0.5, scoring="magnitude"))
    assert pruned.bert.encoder.layer[0].intermediate.dense.out_features < 48  # physically smaller
    texts = ["a good movie", "bad plot"]
    with torch.no_grad():
        expected = torch.softmax(pruned(**tok(texts, padding=True, return_tensors="pt")).logits, -1).numpy()
    np.testing.assert_allclose(ClassifierPredictor(pruned, tok).predict_proba(texts), expected, atol=1e-6)


def test_predictor_pairs_and_truncation(tok):
    model = KeywordClassifier(tok)
    predictor = ClassifierPredictor(model, tok, max_length=4)
    # 4 tokens keep "[CLS] a the [SEP]" of the first text: its "good" is truncated away
    assert predictor.predict(["a the movie good", "good"]).tolist() == [0, 1]
    assert ClassifierPredictor(model, tok).predict([("a movie", "good"), ("a", "film")]).tolist() == [1, 0]
    with pytest.raises(ConfigError, match="single string"):
        predictor.predict("a good movie")
    with pytest.raises(ConfigError, match="same kind"):
        predictor.predict(["a", ("b", "c")])
    with pytest.raises(ConfigError, match="batch_size"):
        ClassifierPredictor(model, tok, batch_size=0)


# ------------------------------------------------------------------------------------------------------- sample
def sst2_like(n=10):
    import datasets

    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    rows = {"sentence": [f"sentence {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}
    return datasets.Dataset.from_dict(rows, features=features)


def test_sample_is_the_same_for_a_seed_and_follows_the_seeded_permutation():
    dataset = sst2_like(10)
    first, again = draw_sample(dataset, 4, seed=3), draw_sample(dataset, 4, seed=3)
    assert first == again and first.fingerprint() == again.fingerprint()
    assert list(first.indices) == np.random.default_rng(3).permutation(10)[:4].tolist()
    assert first.columns == ("sentence",)
    for index, row, label in zip(first.indices, first.inputs, first.labels, strict=True):
        assert row == (f"sentence {index}",) and label == index % 2
    other = draw_sample(dataset, 4, seed=4)
    assert other.indices != first.indices and other.fingerprint() != first.fingerprint()


def test_sample_of_pairs_drops_unlabelled_rows_and_takes_all():
    rows = [(("p0", "h0"), 1), (("p1", "h1"), -1), (("p2", "h2"), 0)]
    everything = draw_sample(rows, None, seed=0, text_columns=["premise", "hypothesis"])
    assert everything.indices == (0, 2) and everything.labels == (1, 0)
    assert everything.model_inputs() == [("p0", "h0"), ("p2", "h2")]
    assert dict(everything.textattack_input(1)) == {"premise": "p2", "hypothesis": "h2"}
    assert len(draw_sample(rows, 50, seed=0)) == 2  # more than there are: all of them, with a warning


def test_sample_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"dataset\[1\]: expected a \(text, integer label\) pair"):
        draw_sample([("a", 0), ("b", "x")], 1, seed=0)
    with pytest.raises(DataError, match="at least one labelled row"):
        draw_sample([("a", -1)], 1, seed=0)
    with pytest.raises(ConfigError, match="n_examples"):
        draw_sample([("a", 0)], 0, seed=0)
    with pytest.raises(DataError, match="missing"):
        draw_sample(sst2_like(2), 1, seed=0, text_columns=["text"])


# ------------------------------------------------------------------------------------------------------- config
def test_config_validates_and_round_trips(tmp_path):
    config = AuditConfig(recipes=["pwws"], n_examples=5, query_budget=None, seed=7)
    config.save_pretrained(tmp_path)
    assert AuditConfig.from_pretrained(tmp_path) == config
    for kwargs, field in (({"n_examples": 0}, "n_examples"), ({"query_budget": 0}, "query_budget"),
                          ({"recipes": []}, "recipes"), ({"recipes": ["pwws", "PWWS"]}, "recipes"),
                          ({"sparsity_measure": "bits"}, "sparsity_measure"), ({"confidence": 1.0}, "confidence"),
                          ({"text_columns": ["a", "b", "c"]}, "text_columns"), ({"transfer": "yes"}, "transfer")):
        with pytest.raises(ConfigError, match=f"AuditConfig.{field}"):
            AuditConfig(**kwargs)
    with pytest.raises(ConfigError, match="unknown key"):
        AuditConfig.from_dict({"n_exmples": 3})


# ------------------------------------------------------------------------------------------------------ recipes
def test_recipe_registry_names():
    assert {name: spec.class_name for name, spec in RECIPES.items()} == {
        "deepwordbug": "DeepWordBugGao2018", "pruthi": "Pruthi2019", "pwws": "PWWSRen2019",
        "textfooler": "TextFoolerJin2019", "bae": "BAEGarg2019", "checklist": "CheckList2020"}
    assert get_recipe("DeepWordBug") is RECIPES["deepwordbug"]
    assert get_recipe("PWWSRen2019") is RECIPES["pwws"]
    with pytest.raises(ConfigError, match="already registered"):
        register_recipe(RecipeSpec("pwws", "Other"))
    with pytest.raises(ConfigError, match="unknown name 'no such'"):
        get_recipe("no such")


@pytest.fixture
def no_textfooler_resources(tmp_path, monkeypatch):
    """A machine with NLTK stopwords but without TextFooler's embeddings, sentence encoder and POS tagger."""
    import nltk

    stopwords = tmp_path / "nltk" / "corpora" / "stopwords"
    stopwords.mkdir(parents=True)
    (stopwords / "english").write_text("a\nthe\n")
    monkeypatch.setenv("TA_CACHE_DIR", str(tmp_path / "ta"))
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub"))
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "nltk"))
    monkeypatch.setattr(nltk.data, "path", [])
    return tmp_path


def test_textfooler_without_resources_names_them_and_how_to_provide_them(no_textfooler_resources):
    ta_cache = no_textfooler_resources / "ta"
    with pytest.raises(MissingResourceError) as caught:
        resolve_recipe("textfooler")
    message = str(caught.value)
    assert message.startswith("recipe 'textfooler' cannot run here: missing counter-fitted word embeddings")
    assert f"unzip it into {ta_cache}/word_embeddings/" in message
    assert "paragramcf.zip" in message
    assert "Universal Sentence Encoder" in message and "universal-sentence-encoder/3" in message
    assert "averaged_perceptron_tagger_eng" in message and "NLTK_DATA" in message
    # the check happens before anything is built: no AttackProbe, no textattack, no download attempt
    with pytest.raises(MissingResourceError, match="'textfooler'"):
        RobustnessAudit(AuditConfig(recipes=["deepwordbug", "textfooler"]))


# ------------------------------------------------------------------------------------------------ attack logs
def record(index, outcome, queries, pct, gt=1, perturbed="a gpod movie", original="a good movie"):
    flipped = outcome == "successful"
    original_label = gt if outcome != "skipped" else 1 - gt
    return AttackRecord(index=index, original=(original,), perturbed=(perturbed if outcome != "skipped" else original,),
                        ground_truth=gt, original_label=original_label,
                        perturbed_label=1 - gt if flipped else original_label, outcome=outcome,
                        num_queries=queries, perturbed_word_pct=pct)


def constructed_log(name="dense", sparsity=0.0, recipe="deepwordbug"):
    """successful, failed, skipped, successful: clean acc 3/4, under attack 1/4, success 2/3."""
    return AttackLog(model_name=name, sparsity=sparsity, recipe=recipe, columns=("sentence",),
                     sample_fingerprint="f" * 16, seed=0, query_budget=50, seconds=1.5, records=[
                         record(3, "successful", 10, 100 / 3),
                         record(5, "failed", 20, 0.0, gt=0, original="a dull film", perturbed="a dlul film"),
                         record(8, "skipped", 1, 0.0, original="the plot"),
                         record(9, "successful", 30, 20.0, perturbed="a gopd film is not bad",
                                original="a good film is not bad"),
                     ])


def test_log_summary_matches_hand_computed_metrics():
    result = constructed_log().summarize(n_resamples=200)
    assert result.clean_accuracy.value == 0.75
    assert result.accuracy_under_attack.value == 0.25
    assert result.attack_success_rate.value == pytest.approx(2 / 3)
    assert result.mean_perturbed_word_pct.value == pytest.approx((100 / 3 + 20) / 2)
    assert result.mean_queries.value == 20.0  # (10 + 20 + 30) / 3: skipped examples are not attacked
    assert 0.0 <= result.clean_accuracy.low <= 0.75 <= result.clean_accuracy.high <= 1.0
    assert result.query_budget == 50 and result.n_examples == 4


def test_log_json_and_csv_rows_round_trip():
    log = constructed_log()
    assert AttackLog.from_dict(json.loads(json.dumps(log.to_dict()))) == log
    rows = log.csv_rows()
    assert rows[0] == {"model": "dense", "sparsity": 0.0, "recipe": "deepwordbug", "index": 3,
                       "original": "a good movie", "perturbed": "a gpod movie", "ground_truth": 1,
                       "original_label": 1, "perturbed_label": 0, "outcome": "successful", "num_queries": 10,
                       "perturbed_word_pct": 100 / 3}
    assert [r["outcome"] for r in rows] == ["successful", "failed", "skipped", "successful"]
    with pytest.raises(ConfigError, match="AttackRecord.outcome"):
        record(0, "maximized", 1, 0.0)


# ---------------------------------------------------------------------------------------------------- transfer
def test_transfer_rate_by_hand():
    # eligible (target right on clean): 0, 1, 3; fooled among them: 0 and 3
    assert transfer_rate([True, True, False, True], [True, False, True, True]) == pytest.approx(2 / 3)
    assert math.isnan(transfer_rate([False, False], [True, True]))
    with pytest.raises(ConfigError, match="fooled"):
        transfer_rate([True], [True, False])


def sample_for(log: AttackLog) -> AttackSample:
    """An AttackSample whose fingerprint the log is stamped with."""
    sample = AttackSample(indices=tuple(r.index for r in log.records), inputs=tuple(r.original for r in log.records),
                          labels=tuple(r.ground_truth for r in log.records), columns=log.columns, seed=0)
    log.sample_fingerprint = sample.fingerprint()
    return sample


def test_transfer_probe_replays_a_constructed_log(tok):
    log = constructed_log()
    sample = sample_for(log)
    # adversarial examples: "a gpod movie" (gt 1) and "a gopd film is not bad" (gt 1)
    config = AuditConfig(n_resamples=100)
    # a target that only knows "great": wrong on both clean originals -> nothing eligible
    run = TransferProbe(log, config)(AuditTarget("great-only", KeywordClassifier(tok, ["great"]), tok, 0.5), sample)
    assert (run.result.n_adversarial, run.result.n_eligible) == (2, 0)
    assert math.isnan(run.result.transfer_rate.value)
    # a target that knows "good": right on both originals, fooled by both misspellings -> 1.0
    run = TransferProbe(log, config)(AuditTarget("good", KeywordClassifier(tok), tok, 0.5), sample)
    assert (run.result.n_adversarial, run.result.n_eligible, run.result.transfer_rate.value) == (2, 2, 1.0)
    assert [(r.index, r.clean_label, r.adversarial_label, r.transferred) for r in run.records] == [
        (3, 1, 0, True), (9, 1, 0, True)]
    assert run.result.source_name == "dense" and run.result.recipe == "deepwordbug"
    # a target that reads "gopd" as unknown but keeps "good" and also trusts "bad"... -> half transfer
    half = KeywordClassifier(tok, ["good", "bad"])
    run = TransferProbe(log, config)(AuditTarget("good-or-bad", half, tok, 0.5), sample)
    assert (run.result.n_eligible, run.result.transfer_rate.value) == (2, 0.5)  # "a gopd film is not bad" stays 1


def test_transfer_probe_refuses_another_sample(tok):
    log = constructed_log()
    sample_for(log)
    other = AttackSample(indices=(1,), inputs=(("a good movie",),), labels=(1,), columns=("sentence",))
    with pytest.raises(ConfigError, match="not the one the source log"):
        TransferProbe(log)(AuditTarget("m", KeywordClassifier(tok), tok, 0.0), other)


def test_transfer_result_json_round_trip():
    result = TransferResult("pruned", 0.5, "dense", 0.0, "pwws", 4, 3, MetricWithCI(2 / 3, 0.0, 1.0), seed=0)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["kind"] == "transfer"
    assert robustness_result_from_dict(payload) == result


# ----------------------------------------------------------------------------------------------------- loyalty
def test_loyalty_probe_by_hand(tok):
    sample = AttackSample(indices=(0, 1, 2, 3), inputs=(("a good movie",), ("bad",), ("great film",), ("dull",)),
                          labels=(1, 0, 1, 0), columns=("sentence",))
    reference = AuditTarget("dense", KeywordClassifier(tok, ["good", "great"]), tok, 0.0)
    probe = LoyaltyProbe(reference, AuditConfig(n_resamples=100, progress=False))
    itself = probe(reference, sample)
    assert itself.label_loyalty.value == 1.0 and itself.probability_loyalty.value == pytest.approx(1.0)
    # knows only "good": disagrees on "great film" -> 3 of 4 labels agree. There p = (a, 1 - a) vs (1 - a, a)
    # with a = 1 / (1 + e^2); JS divergence (nats) of mirrored pairs = ln 2 - H(a), so loyalty = 1 - sqrt(ln 2 - H(a))
    other = probe(AuditTarget("pruned", KeywordClassifier(tok, ["good"]), tok, 0.3), sample)
    a = 1 / (1 + math.exp(2))
    entropy = -(a * math.log(a) + (1 - a) * math.log(1 - a))
    assert other.label_loyalty.value == 0.75
    assert other.probability_loyalty.value == pytest.approx((3 + 1 - math.sqrt(math.log(2) - entropy)) / 4, abs=1e-9)
    assert (other.model_name, other.sparsity, other.reference_name, other.n_examples) == ("pruned", 0.3, "dense", 4)


# -------------------------------------------------------------------------------------------------- probe base
def test_probe_validates_target_and_labels(tok):
    probe = LoyaltyProbe(AuditTarget("dense", KeywordClassifier(tok), tok, 0.0))
    sample = AttackSample(indices=(0,), inputs=(("a",),), labels=(2,), columns=("sentence",))
    with pytest.raises(ConfigError, match=r"sample labels \[2\]: expected class ids in \[0, 2\)"):
        probe(AuditTarget("m", KeywordClassifier(tok), tok, 0.0), sample)
    with pytest.raises(ConfigError, match="expected an AuditTarget"):
        probe("model", sample)
    with pytest.raises(ConfigError, match="AuditTarget.sparsity"):
        AuditTarget("m", KeywordClassifier(tok), tok, 1.5)
    with pytest.raises(ConfigError, match="pass sparsity explicitly"):
        AuditTarget("m", KeywordClassifier(tok), tok).measured_sparsity()


def test_measured_sparsity_of_a_pruned_tiny_model(tok):
    from hfprune import PruningConfig, prune

    model = tiny_model("bert")
    assert AuditTarget("dense", model, tok).measured_sparsity("heads") == 0.0
    pruned = copy.deepcopy(model)
    prune(pruned, PruningConfig(head_sparsity=0.5, ffn_sparsity=0.25, scoring="magnitude"))
    target = AuditTarget("pruned", pruned, tok)
    assert target.measured_sparsity("heads") == 0.5  # 4 of 8 heads
    assert target.measured_sparsity("ffn") == 0.25  # 24 of 96 neurons
    # removed: 4 heads x (q, k, v rows of 8 x (32 + 1) + 8 output columns x 32) + 24 neurons x (32 + 1 + 32)
    removed = 4 * (3 * 8 * 33 + 8 * 32) + 24 * (32 + 1 + 32)
    dense_params = sum(p.numel() for p in model.parameters())
    assert target.measured_sparsity("params") == pytest.approx(removed / dense_params)
    assert AuditTarget("given", pruned, tok, sparsity=0.4).measured_sparsity("heads") == 0.4


# ------------------------------------------------------------------------------------------------------ report
def constructed_report(tok, tmp_path) -> RobustnessReport:
    """A report from constructed logs: dense (0%) and pruned (50%), one recipe, loyalty and transfer."""
    dense_log = constructed_log("dense", 0.0)
    sample = sample_for(dense_log)
    pruned_log = constructed_log("pruned", 0.5)
    pruned_log.records = pruned_log.records[:2] + [record(8, "skipped", 1, 0.0, original="the plot"),
                                                   record(9, "failed", 40, 0.0, original="a good film is not bad")]
    pruned_log.sample_fingerprint = dense_log.sample_fingerprint
    config = AuditConfig(recipes=["deepwordbug"], n_examples=4, query_budget=50, n_resamples=100, progress=False,
                         output_dir=str(tmp_path))
    probs_dense = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    probs_pruned = np.array([[0.2, 0.8], [0.4, 0.6], [0.3, 0.7], [0.6, 0.4]])
    report = RobustnessReport(
        config=config, reference="dense", models={"dense": 0.0, "pruned": 0.5}, recipes=["deepwordbug"],
        sample=sample, loyalty_sample=sample, attack_logs=[dense_log, pruned_log],
        robustness=[dense_log.summarize(100), pruned_log.summarize(100)],
        loyalty=[summarize_loyalty(probs_dense, probs_dense, model_name="dense", sparsity=0.0, reference_name="dense",
                                   n_resamples=100),
                 summarize_loyalty(probs_dense, probs_pruned, model_name="pruned", sparsity=0.5,
                                   reference_name="dense", n_resamples=100)],
        transfer_runs=[TransferProbe(dense_log, config)(AuditTarget("pruned", KeywordClassifier(tok), tok, 0.5),
                                                        sample)],
        seconds=2.0,
    )
    return report


def test_report_files_and_contents(tok, tmp_path):
    report = constructed_report(tok, tmp_path)
    written = report.save(tmp_path)
    assert {"json", "markdown", "attack_log", "transfer_log", "config"} <= set(written)
    assert {f"plot:{name}" for name in PLOTS} <= set(written)
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary files
    for name in PLOTS:
        assert written[f"plot:{name}"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    payload = json.loads(written["json"].read_text())
    assert payload["reference"] == "dense" and payload["recipes"] == ["deepwordbug"]
    assert payload["sample"]["fingerprint"] == report.sample.fingerprint()
    assert payload["sample"]["indices"] == [3, 5, 8, 9]
    robustness = [robustness_result_from_dict(r) for r in payload["robustness"]]
    assert robustness == report.robustness
    assert [r.attack_success_rate.value for r in robustness] == [pytest.approx(2 / 3), pytest.approx(1 / 3)]
    assert payload["loyalty"][1]["label_loyalty"]["value"] == 0.75  # second row flips 0 -> 1
    assert payload["transfer"][0]["transfer_rate"]["value"] == 1.0
    assert payload["timings"][0] == {"model": "dense", "recipe": "deepwordbug", "n_examples": 4, "seconds": 1.5}

    markdown = written["markdown"].read_text()
    assert "| dense | 0% | deepwordbug | 4 | 0.750 [" in markdown
    assert "| pruned | 50% | deepwordbug | 4 | 0.750 [" in markdown
    assert "| pruned | 50% | dense | 4 | 0.750 [" in markdown  # loyalty row
    assert "| pruned | 50% | dense (0%) | deepwordbug | 2 | 2 | 1.000" in markdown  # transfer row
    assert "query budget 50 per example" in markdown

    rows = list(csv.DictReader(io.StringIO(written["attack_log"].read_text())))
    assert len(rows) == 8 and rows[0]["perturbed"] == "a gpod movie" and rows[0]["num_queries"] == "10"
    assert [r["outcome"] for r in rows if r["model"] == "pruned"] == ["successful", "failed", "skipped", "failed"]
    transfer_rows = list(csv.DictReader(io.StringIO(written["transfer_log"].read_text())))
    assert [(r["index"], r["transferred"]) for r in transfer_rows] == [("3", "True"), ("9", "True")]
    assert AuditConfig.from_pretrained(tmp_path) == report.config


def test_rows_to_csv_quotes_commas_and_newlines():
    text = rows_to_csv([{"a": "x, y", "b": "line\nbreak"}, {"a": "z", "c": 1}])
    assert list(csv.DictReader(io.StringIO(text))) == [{"a": "x, y", "b": "line\nbreak", "c": ""},
                                                       {"a": "z", "b": "", "c": "1"}]
    assert rows_to_csv([]) == ""


# ------------------------------------------------------------------------------------ with TextAttack (audit)
@pytest.mark.audit
def test_textattack_wrapper_answers_through_the_predictor(tok):
    from hfprune.audit.robustness import textattack_wrapper
    from hfprune.compat.textattack import import_textattack

    textattack = import_textattack()
    model = KeywordClassifier(tok)
    wrapper = textattack_wrapper(ClassifierPredictor(model, tok, batch_size=2))
    assert isinstance(wrapper, textattack.models.wrappers.HuggingFaceModelWrapper)
    probs = wrapper(["a good movie", "bad", "great", "good"])
    expected_positive = 1 / (1 + math.exp(-2))
    negative = 1 - expected_positive
    np.testing.assert_allclose(probs[:, 1], [expected_positive, negative, negative, expected_positive], atol=1e-12)
    assert model.batch_sizes == [2, 2]
    goal = textattack.goal_functions.UntargetedClassification(wrapper, model_batch_size=3)
    goal.init_attack_example(textattack.shared.AttackedText("a good movie"), 1)
    results, _ = goal.get_results([textattack.shared.AttackedText(t) for t in ("a gpod movie", "a good film")])
    assert [r.output for r in results] == [0, 1] and goal.num_queries == 3


@pytest.mark.audit
def test_audit_with_deepwordbug_on_keyword_models(tok, tmp_path):
    """Outcomes on a keyword model are known in advance: "good" misspelt flips it, a negative cannot be flipped."""
    dataset = [("a good movie", 1), ("the dull plot", 0), ("a bad film", 1), ("the movie was very good", 1)]
    dense = AuditTarget("dense", KeywordClassifier(tok, ["good"]), tok, 0.0)
    pruned = AuditTarget("pruned", KeywordClassifier(tok, ["good", "bad"]), tok, 0.5)
    config = AuditConfig(recipes=["deepwordbug"], n_examples=4, query_budget=30, n_resamples=100, progress=False,
                         output_dir=str(tmp_path / "report"))
    report = RobustnessAudit(config).run([dense, pruned], dataset=dataset)

    dense_log, pruned_log = report.log("dense", "deepwordbug"), report.log("pruned", "deepwordbug")
    assert [r.index for r in dense_log.records] == [r.index for r in pruned_log.records] == list(report.sample.indices)
    assert dense_log.sample_fingerprint == pruned_log.sample_fingerprint == report.sample.fingerprint()
    by_index = {r.index: r for r in dense_log.records}
    assert by_index[0].outcome == "successful" and by_index[0].perturbed[0] != "a good movie"
    assert by_index[0].perturbed_word_pct == pytest.approx(100 / 3) and by_index[0].perturbed_label == 0
    assert by_index[1].outcome == "failed"  # no character edit turns a negative into "good"
    assert by_index[2].outcome == "skipped"  # "a bad film" is labelled 1 but the dense model says 0
    assert by_index[3].outcome == "successful" and by_index[3].perturbed_word_pct == pytest.approx(20.0)
    assert all(r.num_queries <= 30 for r in dense_log.records)
    assert {r.index: r.outcome for r in pruned_log.records}[2] == "successful"  # "bad" makes it positive

    dense_result = report.robustness[0]
    assert (dense_result.clean_accuracy.value, dense_result.accuracy_under_attack.value) == (0.75, 0.25)
    assert dense_result.attack_success_rate.value == pytest.approx(2 / 3)
    assert [r.label_loyalty.value for r in report.loyalty] == [1.0, 0.75]
    forward = next(r for r in report.transfer if r.source_name == "dense")
    assert forward.n_adversarial == 2 and forward.transfer_rate.value == 1.0  # misspelt "good" fools both
    assert (tmp_path / "report" / "robustness_report.json").is_file()


def test_attack_probe_checks_sparsity_before_attacking(tok):
    from hfprune.audit.robustness import AttackProbe

    sample = AttackSample(indices=(0,), inputs=(("a good movie",),), labels=(1,), columns=("text",))
    probe = AttackProbe("deepwordbug", AuditConfig(progress=False))
    with pytest.raises(ConfigError, match=r"AuditTarget.sparsity \(keyword\).*pass sparsity explicitly"):
        probe(AuditTarget("keyword", KeywordClassifier(tok), tok), sample)


@pytest.mark.audit
def test_attack_objects_and_builders_are_retargeted_at_each_model(tok):
    """A built Attack (and a builder) must query the model it is run against, not the one it was built for."""
    from hfprune.audit.robustness import run_attack, textattack_wrapper
    from hfprune.compat.textattack import import_textattack

    textattack = import_textattack()
    dense, pruned = KeywordClassifier(tok, ["good"]), KeywordClassifier(tok, ["good", "great"])
    dataset = [("a great film", 1)]  # dense says 0 (skipped); pruned says 1, and a typo in "great" flips it
    config = AuditConfig(progress=False, n_resamples=0, query_budget=40)
    built = textattack.attack_recipes.Pruthi2019.build(textattack_wrapper(ClassifierPredictor(dense, tok)))
    builder = textattack.attack_recipes.Pruthi2019.build
    for recipe in (built, builder):
        outcomes = [run_attack(model, tok, dataset, recipe, 1, 40, 0, sparsity=0.0, config=config).log.records[0]
                    for model in (dense, pruned)]
        assert [r.outcome for r in outcomes] == ["skipped", "successful"]
        assert outcomes[1].perturbed != ("a great film",) and outcomes[1].perturbed_label == 0
    assert resolve_recipe(built).name == "GreedySearch+CompositeTransformation"
    assert resolve_recipe(builder).name == "build"


def test_predictor_needs_a_padding_token(tok):
    no_pad = copy.deepcopy(tok)
    no_pad.pad_token = None
    with pytest.raises(ConfigError, match="tokenizer: has no padding token"):
        ClassifierPredictor(KeywordClassifier(tok), no_pad)
