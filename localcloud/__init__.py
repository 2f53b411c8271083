"""The local cloud: OSS, MNS, IMM and FC servers that speak the real wire protocols.

Each service lives in its own package (``oss``, ``mns``, ``imm``, ``fc``) with its actions,
state and errors; ``core`` holds what they share (the HTTP server, the key pair, durable
files). Services reach each other only through their public APIs, as in the cloud.
"""
