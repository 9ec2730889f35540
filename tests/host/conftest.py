"""pytest leaves these tests to tests/unit/test_copy_engine_pythons.py unless they are named.

They are stdlib ``unittest`` modules that the engine's interpreters run themselves: that test
runs ``python -m unittest discover -s tests/host`` under Python 2.7 and under the venv's
Python 3.11, so a whole-suite pytest run would only run them a third time. Named on the
command line (``pytest tests/host`` or one of its files), pytest collects them as usual.
"""

from __future__ import absolute_import, division, print_function

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_ignore_collect(collection_path, config):
    named = [os.path.abspath(str(arg).split("::")[0]) for arg in config.args]
    if any(path == HERE or path.startswith(HERE + os.sep) for path in named):
        return None
    return True
