"""The ``infercost`` command."""
