"""`dreambolt watch`: keep a table current as objects arrive, exactly once, until told to stop.

Without a queue the sources are listed every interval and the (uri, etag) ledger decides what is
new or changed; with `--queue`, S3 event notifications read from SQS (sent directly, wrapped by
SNS, or in the EventBridge shape) are hints: each object is HEADed and loaded as it is now, and a
message is deleted only after its files commit. `--listen` serves `/livez`, `/readyz` and
Prometheus `/metrics`; a clean drain on SIGTERM/SIGINT exits 0.
"""
