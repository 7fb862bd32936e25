"""One module per op; each reads top to bottom like the technician's recipe."""
