"""The component package's schema, as the plugin's host infers it, and its reviewed copy.

    python -m eks_gpu_slicing.review.package_schema           # rewrite provider/schema.json
    python -m eks_gpu_slicing.review.package_schema --check   # exit 1 when it has drifted

`make schema` runs the first: after a change to components/package.py (a new input, a
changed docstring), regenerate, review the diff and commit it; tests/test_package.py fails
until the file matches.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pulumi.provider.experimental.component import ComponentProvider

from components.package import PACKAGE_NAME, PACKAGE_VERSION, GpuSharing
from eks_gpu_slicing.settings.stack_files import ROOT

SCHEMA_FILE = ROOT / "provider" / "schema.json"


def inferred_schema() -> dict[str, Any]:
    """The schema the plugin serves: built by the same ComponentProvider that
    component_provider_host starts, with the same arguments as provider/__main__.py."""
    provider = ComponentProvider([GpuSharing], PACKAGE_NAME, None, PACKAGE_VERSION)
    assert provider.schema is not None
    return json.loads(provider.schema)


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the file")
    args = parser.parse_args(argv)
    text = schema_text(inferred_schema())
    if args.check:
        if not SCHEMA_FILE.is_file() or SCHEMA_FILE.read_text() != text:
            print(f"{SCHEMA_FILE.relative_to(ROOT)} is out of date: run `make schema`")
            return 1
        return 0
    SCHEMA_FILE.write_text(text)
    print(f"wrote {SCHEMA_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
