"""hfprune.data.load_dataset on the real local copies: Hub split names, sizes, columns and label names."""

from __future__ import annotations

import numpy as np
import pytest

from hfprune.data import load_dataset, lookup, readers
from hfprune.data.paths import data_dir
from hfprune.errors import DataError

pytestmark = pytest.mark.skipif(not (data_dir() / "sst2").is_dir(), reason=f"no local data under {data_dir()}")


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    """Parsed datasets are cached as Arrow files: keep this module's cache out of the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HFPRUNE_CACHE_DIR", str(tmp_path_factory.mktemp("hfprune-cache")))
        yield


def test_sst2_has_glue_splits_columns_and_labels():
    sst2 = load_dataset("glue/sst2")
    assert {name: split.num_rows for name, split in sst2.items()} == {"train": 67349, "validation": 872, "test": 1821}
    for split in sst2.values():
        assert split.column_names == ["sentence", "label", "idx"]
    assert sst2["train"].features["label"].names == ["negative", "positive"]
    assert sst2["train"][0] == {"sentence": "hide new secretions from the parental units ", "label": 0, "idx": 0}
    assert np.bincount(sst2["validation"]["label"]).tolist() == [428, 444]
    assert np.bincount(sst2["test"]["label"]).tolist() == [912, 909]


@pytest.mark.parametrize("args", [("sst2", "validation"), ("stanfordnlp/sst2", "validation"), ("glue", "sst2")])
def test_sst2_aliases_and_two_argument_hub_form(args):
    loaded = load_dataset(*args)
    validation = loaded if args[1] == "validation" else loaded["validation"]
    assert validation.num_rows == 872
    assert validation[0]["sentence"] == "it 's a charming and often affecting journey . "


def test_ag_news_test_has_7600_rows_in_four_balanced_classes(caplog):
    ag_news = load_dataset("fancyzhx/ag_news")
    test = ag_news["test"]
    assert test.num_rows == 7600
    assert test.features["label"].names == ["World", "Sports", "Business", "Sci/Tech"]
    assert np.bincount(test["label"]).tolist() == [1900, 1900, 1900, 1900]
    assert test[0]["text"].startswith("Fears for T N pension after talks Unions representing workers")
    assert test[0]["label"] == 2  # class 3 (Business) in the CSV
    assert ag_news["train"].num_rows == 10001
    assert np.bincount(ag_news["train"]["label"]).tolist() == [2509, 2458, 2496, 2538]
    assert any("sample of the Hub's 120,000-row train" in r.message for r in caplog.records)


def test_imdb_has_25k_balanced_reviews_per_split_and_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HFPRUNE_CACHE_DIR", str(tmp_path))
    imdb = load_dataset("stanfordnlp/imdb")
    assert {name: split.num_rows for name, split in imdb.items()} == {"train": 25000, "test": 25000}
    assert imdb["train"].column_names == ["text", "label"]
    assert imdb["test"].features["label"].names == ["neg", "pos"]
    assert np.bincount(imdb["train"]["label"]).tolist() == [12500, 12500]
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "imdb").iterdir())
    assert cached == ["test", "train"]
    assert load_dataset("imdb", "test")[123]["text"] == imdb["test"][123]["text"]


def test_rte_labels_and_unlabelled_test():
    rte = load_dataset("glue/rte")
    assert {name: split.num_rows for name, split in rte.items()} == {"train": 2490, "validation": 277, "test": 3000}
    assert rte["train"].column_names == ["sentence1", "sentence2", "label", "idx"]
    assert rte["train"].features["label"].names == ["entailment", "not_entailment"]
    assert np.bincount(rte["train"]["label"]).tolist() == [1249, 1241]
    assert set(rte["test"]["label"]) == {-1}


def test_rotten_tomatoes_split_is_deterministic_balanced_and_disjoint():
    rt = load_dataset("rotten_tomatoes")
    assert {name: split.num_rows for name, split in rt.items()} == {"train": 8530, "validation": 1066, "test": 1066}
    for split in rt.values():
        assert np.bincount(split["label"]).tolist() == [split.num_rows // 2] * 2
    texts = [set(split["text"]) for split in rt.values()]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    folder = data_dir() / "rotten_tomatoes_polarity"
    files = [folder / "rt-polarity.pos", folder / "rt-polarity.neg"]
    assert readers.read_rotten_tomatoes(files, "test") == readers.read_rotten_tomatoes(files, "test")


@pytest.mark.parametrize("name", ["jane_austen", "tiny_shakespeare"])
def test_text_corpora_have_contiguous_paragraph_splits(name):
    corpus = load_dataset(name)
    sizes = {split: corpus[split].num_rows for split in ("train", "validation", "test")}
    total = sum(sizes.values())
    assert sizes["train"] == pytest.approx(0.9 * total, rel=0.01)
    assert all(text.strip() for text in corpus["validation"]["text"])
    assert corpus["train"].column_names == ["text"]


def test_tiny_shakespeare_rows_are_speeches():
    first = load_dataset("tiny_shakespeare", "train")[0]["text"]
    assert first == "First Citizen:\nBefore we proceed any further, hear me speak."


def test_wikitext_rows_are_hub_lines_and_train_is_absent():
    wikitext = load_dataset("wikitext", "wikitext-2-raw-v1")
    assert {name: split.num_rows for name, split in wikitext.items()} == {"validation": 3760, "test": 4358}
    assert wikitext["validation"][0]["text"] == ""
    assert wikitext["validation"][1]["text"] == " = Homarus gammarus = \n"
    with pytest.raises(DataError, match="only validation and test"):
        load_dataset("wikitext/wikitext-103-raw-v1", "train")


def test_unknown_split_names_dataset_and_available_splits():
    with pytest.raises(DataError) as error:
        load_dataset("glue/sst2", "dev")
    message = str(error.value)
    assert "'glue/sst2'" in message and "'dev'" in message
    assert "['test', 'train', 'validation']" in message


def _force_offline(monkeypatch):
    import datasets
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_missing_local_copy_offline_names_dataset_file_and_env_var(tmp_path, monkeypatch):
    _force_offline(monkeypatch)
    monkeypatch.setenv("HFPRUNE_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as error:
        load_dataset("imdb", "test")
    message = str(error.value)
    assert "'imdb'" in message
    assert str(tmp_path / "imdb" / "test.jsonl.gz") in message
    assert "HFPRUNE_DATA_DIR" in message and str(tmp_path) in message


def test_unknown_name_offline_lists_local_datasets(tmp_path, monkeypatch):
    _force_offline(monkeypatch)
    with pytest.raises(DataError, match="no local copy of this name.*glue/sst2.*HFPRUNE_DATA_DIR"):
        load_dataset("someone/not-a-dataset")


def test_malformed_file_names_file_and_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HFPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "dev.tsv").write_text("sentence\tlabel\ngood film \t1\nno label here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"dev\.tsv:3: expected 2 tab-separated fields"):
        load_dataset("sst2", "validation", data_dir=tmp_path)


def test_registry_resolves_aliases_case_insensitively():
    assert lookup("SST2").name == "glue/sst2"
    assert lookup("Cornell-Movie-Review-Data/Rotten_Tomatoes").name == "rotten_tomatoes"
    assert lookup("nope") is None


def test_contiguous_slices_cover_every_item_once():
    slices = [readers.contiguous_slice(101, split) for split in ("train", "validation", "test")]
    covered = [i for s in slices for i in range(101)[s]]
    assert covered == list(range(101))
    assert readers.paragraphs(["a", "b", "", "", "c", ""]) == ["a\nb", "c"]


def test_registering_a_taken_name_is_rejected():
    from hfprune.data.local import LocalDataset, register
    from hfprune.errors import ConfigError

    with pytest.raises(ConfigError, match="already registered"):
        register(LocalDataset(name="my-sst2", features={"text": "string"}, splits={}, hub_path=None,
                              aliases=("SST2",)))
    assert lookup("my-sst2") is None
