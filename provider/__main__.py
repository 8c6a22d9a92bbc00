"""The eks-gpu-slicing component package's plugin: serves GpuSharing (components/package.py).

`pulumi package add` and every later `pulumi up` of a consuming program start it; Pulumi's
component provider host infers the schema (checked in as provider/schema.json) from the
component's annotations. The stack program is the repository root's __main__.py, not this.
"""

import sys
from pathlib import Path

# The plugin runs from provider/: make the project's modules importable (as policy/ does).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi.provider.experimental import component_provider_host

from components.package import PACKAGE_NAME, PACKAGE_VERSION, GpuSharing

if __name__ == "__main__":
    component_provider_host([GpuSharing], name=PACKAGE_NAME, version=PACKAGE_VERSION)
