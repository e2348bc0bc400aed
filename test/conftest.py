# Fixture modules shared by test/ and e2e/ live in infercost.testing; list them here.
# pytester runs a suite of its own, for tests of those fixtures.
pytest_plugins = ["infercost.testing.fixtures", "pytester"]
