"""Where the kubesim unit tests get their CRDs: the generated manifests (manifests/crd), so the
tests always see what users install."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
SEARCH = (REPO / "manifests" / "crd",)


def load_crd(plural: str) -> dict[str, Any]:
    """The CustomResourceDefinition serving ``plural`` in group finops.infercost.ai."""
    for directory in SEARCH:
        for path in sorted(directory.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if (
                    isinstance(doc, dict)
                    and doc.get("kind") == "CustomResourceDefinition"
                    and doc["spec"]["names"]["plural"] == plural
                ):
                    return doc
    raise LookupError(f"no CRD for {plural} in {', '.join(str(d) for d in SEARCH)}")
