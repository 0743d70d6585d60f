"""Handlers shipped with oncepipe, registered by name in ``consumers.registry``."""
