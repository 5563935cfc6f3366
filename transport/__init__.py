"""Transports: move CMP messages between the outside world and an engine (HTTP, CoAP, files)."""
