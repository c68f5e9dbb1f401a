"""Every docstring example in calozoo runs (doctest), so the examples a user copies stay true."""

import doctest
import importlib
import pkgutil

import pytest

import calozoo


def _modules_with_examples() -> list[str]:
    names = ["calozoo"] + [m.name for m in pkgutil.walk_packages(calozoo.__path__, "calozoo.")
                           if not m.name.startswith(("calozoo._zoo_configs", "calozoo._artifacts"))]
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        source = spec.loader.get_source(name) if spec and spec.loader else None
        if source and ">>>" in source:
            found.append(name)
    return found


@pytest.mark.parametrize("module_name", _modules_with_examples())
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module_name):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} docstring examples of {module_name} failed"
