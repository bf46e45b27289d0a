"""Everything that touches files and DataFrames (the only package that imports Polars):
finding and reading inputs, framework dumps, chunk files, the tables the entry points
write, bundled samples, and outputs written atomically."""
