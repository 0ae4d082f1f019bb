"""The studio's steps (photos, build, path, refine, render) and its session manager; app.py wires them into Gradio."""
