"""Render a kustomization of deploy/kubernetes/ without kubectl: its resources (files, or folders with a
kustomization of their own) and its patches, merged as kustomize's strategic merge does for what these
manifests use (maps merged key by key; lists of maps with a `name` merged by name, other lists
replaced). The tests validate what this renders, on machines without kubectl, and compare it with
`kubectl kustomize` where kubectl exists.

    python scripts/render_manifests.py deploy/kubernetes/gpu
"""

import sys
from pathlib import Path

import yaml


def render(folder: Path) -> list[dict]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    documents: list[dict] = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        documents += render(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in kustomization.get("patches", []):
        change = yaml.safe_load((folder / patch["path"]).read_text())
        target = next(d for d in documents if _identity(d) == _identity(change))
        _merge(target, change)
    return documents


def _identity(document: dict) -> tuple:
    return document["kind"], document["metadata"]["name"]


def _named(items: list) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in items)


def _merge(base: dict, change: dict) -> None:
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        elif (
            isinstance(value, list)
            and isinstance(base.get(key), list)
            and all(isinstance(v, dict) and "name" in v for v in value)
        ):
            # kustomize puts the patch's items first, in its order, then the others as they were
            by_name = {item["name"]: item for item in base[key] if isinstance(item, dict)}
            for item in value:
                if item["name"] in by_name:
                    _merge(by_name[item["name"]], item)
            patched = [by_name.get(item["name"], item) for item in value]
            base[key] = patched + [item for item in base[key] if item not in patched]
        else:
            base[key] = value


if __name__ == "__main__":
    print(yaml.safe_dump_all(render(Path(sys.argv[1])), sort_keys=False), end="")
