"""Vista's foundation: the user-facing error type, crash-safe files and the progress callback.

Every other package may import it; it imports none of them."""
