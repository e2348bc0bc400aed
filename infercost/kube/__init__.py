"""Kubernetes machinery: client setup, informers, work queues, controller loops, leader
election, status patches, events and an opaque object store.

It knows nothing about cost.
"""
