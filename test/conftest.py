# Fixture modules shared by test/ and e2e/ live in infercost.testing; list them here.
pytest_plugins = ["infercost.testing.fixtures"]
