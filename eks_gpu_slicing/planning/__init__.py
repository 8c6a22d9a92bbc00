"""Capacity planning: from the sharing benchmark's measured results to a strategy and
replicas per instance type (`make plan-capacity`)."""
