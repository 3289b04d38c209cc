"""The model registry: versioned models stored as content-addressed blobs in the workspace."""
