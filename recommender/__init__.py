"""netflix_warehouse's Python side: the embedded warehouse, the raw export, simulation and recommendations."""
