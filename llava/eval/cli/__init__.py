"""Command-line use of a model: run_llava answers one question about one image or video (`python -m
llava.eval.run_llava`)."""
