"""Publishing: the trainer export formats and writer, the dataset card, domain caps, Delta versions."""
