"""Writes the public API of matterport's `mrcnn` package (names and parameter lists) as a JSON fixture.

The fixture pins what `tests/test_mrcnn_api.py` checks our `mrcnn` package against. It holds facts only
(module-level names, their kind, and each callable's parameters: name, kind, whether it has a default), never
matterport's code. Run it on a checkout of matterport's repository, outside this one:

    python -m tools.conformance.matterport_api /path/to/Mask_RCNN --commit <sha> \
        --out tests/data/matterport_mrcnn_api.json

Public names: module-level functions and classes not starting with "_", upper-case module constants, and the
`from mrcnn import utils` sibling import (scripts reach `modellib.utils`); for a class, `__init__` and its
public methods and properties. The source is parsed with `ast`, so matterport's dependencies (TF 1.x, Keras 2,
scikit-image, IPython) need not be installed.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import sys

MODULES = ("config", "utils", "model", "visualize")


def _parameters(args: ast.arguments) -> list[dict]:
    positional = list(args.posonlyargs) + list(args.args)
    defaults_from = len(positional) - len(args.defaults)
    params = []
    for i, arg in enumerate(positional):
        kind = "POSITIONAL_ONLY" if i < len(args.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        params.append({"name": arg.arg, "kind": kind, "default": i >= defaults_from})
    if args.vararg:
        params.append({"name": args.vararg.arg, "kind": "VAR_POSITIONAL", "default": False})
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append({"name": arg.arg, "kind": "KEYWORD_ONLY", "default": default is not None})
    if args.kwarg:
        params.append({"name": args.kwarg.arg, "kind": "VAR_KEYWORD", "default": False})
    return params


def _is_property(node: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)


def module_api(source: str) -> dict:
    """{name: entry} of one module's public names (see the module docstring)."""
    api = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            api[node.name] = {"kind": "function", "parameters": _parameters(node.args)}
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            members = {}
            for item in node.body:
                if not isinstance(item, ast.FunctionDef):
                    continue
                if item.name == "__init__" or not item.name.startswith("_"):
                    if _is_property(item):
                        members[item.name] = {"kind": "property"}
                    else:
                        # drop `self`
                        members[item.name] = {"kind": "method", "parameters": _parameters(item.args)[1:]}
            api[node.name] = {"kind": "class", "members": members}
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id.isupper():
                    api[target.id] = {"kind": "constant"}
        elif isinstance(node, ast.ImportFrom) and node.module == "mrcnn":
            for alias in node.names:
                api[alias.asname or alias.name] = {"kind": "module"}
    return api


def package_api(root: str) -> dict:
    api = {}
    for name in MODULES:
        path = os.path.join(root, "mrcnn", f"{name}.py")
        if not os.path.isfile(path):
            raise SystemExit(f"{path}: not found (pass the root of a matterport Mask_RCNN checkout)")
        with open(path, encoding="utf-8") as f:
            api[name] = module_api(f.read())
    return api


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="root of a matterport/Mask_RCNN checkout (holding mrcnn/)")
    parser.add_argument("--commit", required=True, help="the checkout's commit, recorded in the fixture")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    fixture = {"reference": "github.com/matterport/Mask_RCNN", "commit": args.commit,
               "generated_by": "tools/conformance/matterport_api.py", "modules": package_api(args.root)}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(fixture, f, indent=1, sort_keys=True)
        f.write("\n")
    counts = {m: len(v) for m, v in fixture["modules"].items()}
    print(f"{args.out}: {sum(counts.values())} public names {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
