"""Prepared datasets, synthetic data, degradations and the torch Datasets / DataModules over them."""
