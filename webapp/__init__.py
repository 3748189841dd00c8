"""Demystify's web app: Panel pages, one per demo. No numerics here, only calls into engine."""
