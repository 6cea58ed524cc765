"""What a study found, as files people open: page.py (index.html, trials.csv, artifacts) and
plots.py (the figures)."""
