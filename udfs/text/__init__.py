"""Text filters and near-duplicate detection: language id, heuristic quality rules, MinHash-LSH."""
