"""The three CRDs of ``finops.infercost.ai/v1alpha1`` as typed, validated models.

This package is the single source of truth for field names, defaults and validation; the CRD
manifests are generated from it. It imports nothing else from InferCost.
"""
