"""Hostile and broken inputs, fed to llamadesk's entry points in isolated children (harness.py)."""
