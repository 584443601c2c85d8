"""The artifact store (a local folder or an fsspec URL) and the local cache of its versions."""
