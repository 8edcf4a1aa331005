"""Contracts shared by every nodeview service: subjects, events and views."""
