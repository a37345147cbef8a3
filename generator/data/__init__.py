"""Stage 1: photos in: fetch, scan, decode, annotations."""
