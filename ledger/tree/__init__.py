"""The log's Merkle tree on the server side: which stored subtree hashes make each proof."""
