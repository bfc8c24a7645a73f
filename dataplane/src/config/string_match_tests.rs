// tests (being written)
