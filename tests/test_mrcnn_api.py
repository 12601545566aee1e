"""`mrcnn` has matterport's public API: every module-level name of matterport's mrcnn/{config,utils,model,
visualize}.py (pinned in tests/data/matterport_mrcnn_api.json, written from the reference by
tools/conformance/matterport_api.py) exists here with a compatible signature."""
import importlib
import inspect
import json
import os

import pytest

FIXTURE = os.path.join(os.path.dirname(__file__), "data", "matterport_mrcnn_api.json")
with open(FIXTURE, encoding="utf-8") as _f:
    REFERENCE = json.load(_f)

CASES = [(module, name, entry) for module, names in sorted(REFERENCE["modules"].items())
         for name, entry in sorted(names.items())]


def signature_problems(ours, reference_params):
    """Why a call written against matterport's parameter list could fail on `ours` ([] when compatible).

    Compatible: matterport's positional parameters are ours, in the same order (so positional calls bind
    alike); every parameter name matterport has is accepted by name (or by our **kwargs); a parameter
    optional there is optional here; any extra parameter of ours is optional.
    """
    try:
        params = list(inspect.signature(ours).parameters.values())
    except (TypeError, ValueError) as error:
        return [f"no signature ({error})"]
    if params and params[0].name in ("self", "cls") and not reference_params[:1] == [{"name": params[0].name}]:
        params = params[1:]
    ref_positional = [p for p in reference_params if p["kind"] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
    our_positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    by_name = {p.name: p for p in params}
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params)
    var_pos = any(p.kind == p.VAR_POSITIONAL for p in params)
    problems = []
    for i, ref in enumerate(ref_positional):
        if i >= len(our_positional):
            if not var_pos:
                problems.append(f"positional #{i} {ref['name']!r} missing")
        elif our_positional[i].name != ref["name"]:
            problems.append(f"positional #{i} is {our_positional[i].name!r}, matterport's is {ref['name']!r}")
    for ref in reference_params:
        if ref["kind"] in ("VAR_POSITIONAL", "VAR_KEYWORD"):
            if not any(p.kind.name == ref["kind"] for p in params):
                problems.append(f"*{ref['name']} / **{ref['name']} not accepted")
            continue
        ours_p = by_name.get(ref["name"])
        if ours_p is None:
            if not var_kw:
                problems.append(f"parameter {ref['name']!r} missing")
        elif ref["default"] and ours_p.default is inspect.Parameter.empty:
            problems.append(f"parameter {ref['name']!r} is optional in matterport, required here")
    ref_names = {p["name"] for p in reference_params}
    for p in params:
        if p.name not in ref_names and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) \
                and p.default is inspect.Parameter.empty:
            problems.append(f"extra required parameter {p.name!r}")
    return problems


def test_fixture_records_the_reference_commit_and_all_four_modules():
    assert REFERENCE["commit"] == "3deaec5d902d16e1daf56b62d5971d428dc920bc"
    assert set(REFERENCE["modules"]) == {"config", "utils", "model", "visualize"}
    assert len(CASES) == 86


@pytest.mark.parametrize("module,name,entry", CASES, ids=[f"{m}.{n}" for m, n, _ in CASES])
def test_matterport_public_name_exists_with_a_compatible_signature(module, name, entry):
    mod = importlib.import_module(f"mrcnn.{module}")
    assert hasattr(mod, name), f"mrcnn.{module}.{name} is missing"
    obj = getattr(mod, name)
    kind = entry["kind"]
    if kind == "function":
        assert callable(obj) and not inspect.isclass(obj)
        assert signature_problems(obj, entry["parameters"]) == []
    elif kind == "class":
        assert inspect.isclass(obj)
        for member, spec in entry["members"].items():
            assert hasattr(obj, member), f"mrcnn.{module}.{name}.{member} is missing"
            attr = inspect.getattr_static(obj, member)
            if spec["kind"] == "property":
                assert isinstance(attr, property)
            else:
                method = getattr(obj, member)
                assert signature_problems(method, spec["parameters"]) == [], member
    elif kind == "module":
        assert inspect.ismodule(obj) and obj.__name__ == f"mrcnn.{name}"
    else:
        assert kind == "constant"


def test_signature_check_rejects_incompatible_signatures():
    ref = [{"name": "a", "kind": "POSITIONAL_OR_KEYWORD", "default": False},
           {"name": "b", "kind": "POSITIONAL_OR_KEYWORD", "default": True}]
    assert signature_problems(lambda a, b=1: 0, ref) == []
    assert signature_problems(lambda a, b=1, c=2: 0, ref) == []
    assert signature_problems(lambda b, a=1: 0, ref)  # order
    assert signature_problems(lambda a, b: 0, ref)  # b lost its default
    assert signature_problems(lambda a: 0, ref)  # b missing
    assert signature_problems(lambda a, b=1, *, c: 0, ref)  # extra required


def test_fixture_generator_reads_public_names_and_parameters(tmp_path):
    from tools.conformance.matterport_api import module_api

    api = module_api("import os\nX_URL = 'u'\n_private = 1\nfrom mrcnn import utils\n"
                     "def f(a, b=1, *args, c, d=2, **kw): pass\ndef _g(): pass\n"
                     "class K(object):\n    def __init__(self, x): pass\n    def _h(self): pass\n"
                     "    @property\n    def ids(self): return 1\n")
    assert set(api) == {"X_URL", "utils", "f", "K"}
    assert [(p["name"], p["kind"], p["default"]) for p in api["f"]["parameters"]] == [
        ("a", "POSITIONAL_OR_KEYWORD", False), ("b", "POSITIONAL_OR_KEYWORD", True),
        ("args", "VAR_POSITIONAL", False), ("c", "KEYWORD_ONLY", False), ("d", "KEYWORD_ONLY", True),
        ("kw", "VAR_KEYWORD", False)]
    assert api["K"]["members"] == {"__init__": {"kind": "method", "parameters": [
        {"name": "x", "kind": "POSITIONAL_OR_KEYWORD", "default": False}]}, "ids": {"kind": "property"}}
