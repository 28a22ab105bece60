"""Evaluation: datasets, balanced splits, metrics, the paper's analyses, the resumable
runner and its run log, and reports.

Layer: above models; below train and the CLI.
"""
