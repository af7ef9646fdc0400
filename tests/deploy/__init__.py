"""Installability: the container image, the kustomize manifests, RBAC, and the Argo CD customizations."""
