"""The sans-IO CMP engine: messages, protection, proof-of-possession and the transaction machine.

Pure and deterministic: no sockets, files, threads or wall clock; those come in through interfaces.
"""
