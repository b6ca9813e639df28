"""Datasets offline: Hub names mapped to local copies (``load_dataset``), and where those copies live."""

from hfprune.data.local import available_datasets, eval_split, load_dataset, lookup, register
from hfprune.data.paths import DATA_DIR_ENV, data_dir, nltk_data_dir

__all__ = ["DATA_DIR_ENV", "available_datasets", "data_dir", "eval_split", "load_dataset", "lookup", "nltk_data_dir",
           "register"]
