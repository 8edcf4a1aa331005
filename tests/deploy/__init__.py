"""Tests of the deploy files and the operations scripts."""
