"""Discovery and scraping of inference servers and DCGM exporters.

Turns pod caches and metrics pages into token and power samples for the engine; knows nothing
of CRDs or of writing to the API.
"""
