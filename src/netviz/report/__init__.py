"""The report layer: reads stored results (never runs experiments) and renders HTML and LaTeX/PDF."""
