"""Every test can fail: a test function that checks nothing passes whatever the code does.

The rule, applied to every ``test*`` function (module level or in a ``Test*`` class) of every
``tests/**/test_*.py`` module, read with :mod:`ast` (nothing is imported or run):

A test *checks something* when its body (nested functions and lambdas included) has

* an ``assert`` statement, or
* a call to ``pytest.raises``, ``pytest.warns``, ``pytest.fail`` or ``pytest.deprecated_call``
  (as a call or a ``with`` item), or
* a call to anything named ``assert*`` (``np.testing.assert_allclose``, ``assertEqual``), or
* a call to a helper defined anywhere under ``tests/`` that itself checks something by this
  same rule (followed transitively; helpers are matched by name).

A helper that only returns a value (``check_query`` returns a list of problems) does not count:
the test must assert on what it returns. Wrapping the code under test in
``contextlib.suppress`` does count as "calling" it, so this rule cannot see a test that
swallows its own failure; ``test_no_test_swallows_project_errors`` covers that case.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

_PYTEST_CHECKS = {"raises", "warns", "fail", "deprecated_call"}

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(TESTS.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _direct_check(node: ast.AST) -> bool:
    """An assert, a pytest check or an ``assert*`` call anywhere inside ``node``."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assert):
            return True
        if isinstance(sub, ast.Call):
            func = sub.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "pytest"
                and func.attr in _PYTEST_CHECKS
            ):
                return True
            name = _called_name(sub)
            if name is not None and name.startswith("assert"):
                return True
    return False


def _calls(node: ast.AST) -> set[str]:
    return {
        name
        for sub in ast.walk(node)
        if isinstance(sub, ast.Call) and (name := _called_name(sub)) is not None
    }


def _checking_helpers(modules: list[tuple[Path, ast.Module]]) -> set[str]:
    """Names of the functions under tests/ that check something, directly or through others."""
    functions: dict[str, list[Function]] = {}
    for _, module in modules:
        for node in ast.walk(module):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.setdefault(node.name, []).append(node)
    checking = {name for name, defs in functions.items() if any(map(_direct_check, defs))}
    changed = True
    while changed:
        changed = False
        for name, defs in functions.items():
            if name not in checking and any(_calls(d) & checking for d in defs):
                checking.add(name)
                changed = True
    return checking


def _tests(module: ast.Module) -> Iterator[Function]:
    for node in module.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith(
            "test"
        ):
            yield node
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(
                    item, (ast.FunctionDef, ast.AsyncFunctionDef)
                ) and item.name.startswith("test"):
                    yield item


def checks_nothing(source: str) -> list[str]:
    """Names of the test functions in ``source`` that check nothing (helpers from tests/ count)."""
    modules = [*_modules(), (Path("<source>"), ast.parse(source))]
    checking = _checking_helpers(modules)
    return [
        test.name
        for test in _tests(modules[-1][1])
        if not _direct_check(test) and not _calls(test) & checking
    ]


def test_every_test_function_checks_something():
    modules = list(_modules())
    checking = _checking_helpers(modules)
    vacuous = [
        f"{path.relative_to(TESTS.parent)}::{test.name}"
        for path, module in modules
        if path.name.startswith("test_")
        for test in _tests(module)
        if not _direct_check(test) and not _calls(test) & checking
    ]
    assert not vacuous, "tests that check nothing:\n" + "\n".join(vacuous)


def test_no_test_swallows_project_errors():
    # ``with suppress(UnseenError): code_under_test()`` passes when the code succeeds and
    # when it fails: such a test cannot fail the way its name promises.
    swallowing = []
    for path, module in _modules():
        for test in _tests(module):
            for node in ast.walk(test):
                if not isinstance(node, ast.With):
                    continue
                for item in node.items:
                    call = item.context_expr
                    if isinstance(call, ast.Call) and _called_name(call) == "suppress":
                        names = {a.id for a in call.args if isinstance(a, ast.Name)}
                        names |= {a.attr for a in call.args if isinstance(a, ast.Attribute)}
                        if names & {"UnseenError", "RemoteError", "Exception", "BaseException"}:
                            swallowing.append(f"{path.relative_to(TESTS.parent)}::{test.name}")
    assert not swallowing, swallowing


# -- the rule itself -------------------------------------------------------------------------


def test_the_rule_flags_a_test_without_checks():
    source = "\n".join(
        [
            "def test_a():\n    x = 1 + 1",
            "def helper():\n    return 2",
            "def test_b():\n    helper()",
        ]
    )
    assert checks_nothing(source) == ["test_a", "test_b"]


def test_the_rule_accepts_each_kind_of_check():
    source = "\n".join(
        [
            "import pytest",
            "def test_assert():\n    assert 1",
            "def test_raises():\n    with pytest.raises(ValueError):\n        int('x')",
            "def test_fail():\n    pytest.fail('no')",
            "def test_numpy():\n    np.testing.assert_allclose(1, 1)",
            "def _verify(x):\n    assert x",
            "def _wraps(x):\n    _verify(x)",
            "def test_helper():\n    _wraps(1)",
            "class TestGroup:\n    def test_method(self):\n        assert True",
        ]
    )
    assert checks_nothing(source) == []
