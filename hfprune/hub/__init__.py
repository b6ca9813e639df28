"""Publishing a pruned model: its model card (``card``, from what ``card_inputs`` reads) and the upload to the
Hugging Face Hub (``push``)."""
