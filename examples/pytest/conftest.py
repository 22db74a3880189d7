# Loads hotrestart's pytest plugin for the tests in this directory (or run pytest -p hotrestart.pytest_plugin).
pytest_plugins = ["hotrestart.pytest_plugin"]
