"""Vista's service layer: one function per user action, typed inputs and outputs, all validation.

The CLI (`vista`) and the studio (`vista_studio`, `app.py`) call these functions; neither calls the other."""
