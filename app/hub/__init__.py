"""The Hugging Face Hub: listing repos (repo), downloading into its cache (download, cache),
its errors as one line (errors), and `pull` (pull)."""
