"""Measuring transcripts: word error rate and synthetic speech corpora.

Shared by the tests and the benchmarks (which must not import the tests); not
part of the served product.
"""
