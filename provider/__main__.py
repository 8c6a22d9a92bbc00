"""The eks-gpu-slicing component package's plugin: serves GpuSharing (components/package.py).

`pulumi package add` and every later `pulumi up` of a consuming program start it; the SDK's
component provider (GpuSharingProvider, which also keeps inputs the schema does not declare,
so they are refused by name) infers the schema (checked in as provider/schema.json) from the
component's annotations. The stack program is the repository root's __main__.py, not this.
"""

import sys
from pathlib import Path

# The plugin runs from provider/: make the project's modules importable (as policy/ does).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi.provider import main

from components.package import provider

if __name__ == "__main__":
    # What component_provider_host does (pulumi 3.272, provider/experimental/host.py), with
    # our provider: the engine's address and flags follow the plugin's path in argv.
    main(provider(), sys.argv[1:])
