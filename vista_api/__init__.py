"""Vista's service layer: one function per user action, shared by the CLI (`vista`) and the studio.

Each action takes a frozen request dataclass that validates itself (a `VistaError` with the message the
user sees) and returns a frozen result dataclass; long actions take a `vista_core.progress.ProgressCallback`
and stop when it raises `Cancelled`. Neither face orchestrates the pipeline itself.

    vista_api.poses     estimate poses from photos, import a COLMAP model
    vista_api.train     train a scene (+ the held-out evaluation that follows)
    vista_api.evaluate  evaluate a scene on its held-out views, describe a scene folder
    vista_api.paths     a camera path (preset fitted to a scene, or keyframes), writing it, coverage, previews
    vista_api.refine    diffusion guidance along a path into a new scene folder
    vista_api.render    render a shot (+ recipe), re-render a recipe, verify a video's labels
    vista_api.export    a scene's mesh, a dataset's sparse points
    vista_api.demo      the sample scene end to end

Modules import the pipeline packages lazily where that keeps `vista --help` fast.
"""
