"""Typed models of the payloads the cloud hands to immflow, one module per source, unwrapped layer by layer:
FC trigger → MNS message (`mns`) → IMM notification (`imm`); OSS trigger events (`oss`).

Nothing is imported here so that a handler loads only the module it needs (cold start).
"""
