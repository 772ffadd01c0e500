"""Helpers the tests share; nothing here is collected as a test."""
