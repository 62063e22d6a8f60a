"""Tests for the pure messages package (keywords, crisis)."""
