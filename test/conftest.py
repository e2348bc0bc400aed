pytest_plugins = ["infercost.testing.fixtures"]
