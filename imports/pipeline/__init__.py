"""Imports of partner data (SPEC §6): validate everything, then write all or nothing."""
