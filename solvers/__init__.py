"""Pure optimisation on arrays: no pandas, no geometry, no files."""
