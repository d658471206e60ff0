"""The S3 stage: URIs, the client and its one choke point for calls, transfers, retries and
checksums."""
