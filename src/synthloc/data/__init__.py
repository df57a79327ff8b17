"""Datasets, shards and augmentations."""
