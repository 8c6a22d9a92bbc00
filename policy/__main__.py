"""CrossGuard policy pack for eks-gpu-slicing: `pulumi preview --policy-pack policy`.

The rules live in eks_gpu_slicing/review/policy_rules.py, so that `make check` applies the
same ones to the offline render; this file only serves them.
"""

import sys
from pathlib import Path

# The pack runs from policy/ in its own virtualenv: make the project's modules importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from eks_gpu_slicing.review.policy_pack import PACK_NAME, policies

PolicyPack(name=PACK_NAME, policies=policies(), enforcement_level=EnforcementLevel.MANDATORY)
