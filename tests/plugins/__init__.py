import pytest

# helpers.py asserts on responses for the tests: let pytest explain its failures.
pytest.register_assert_rewrite("tests.plugins.helpers")
