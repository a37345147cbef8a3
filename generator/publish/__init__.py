"""Stage 6: the Report as pages, figures and a post, in a language."""
