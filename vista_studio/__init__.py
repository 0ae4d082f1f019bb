"""The studio's steps as plain Python; app.py (the only gradio importer) lays them out and wires them.

    photos      step 1: the sample scene, a folder in the workspace, an upload and its pre-flight verdicts
    build       step 2: poses + training + held-out evaluation, as a background job (vista_api.poses, .train)
    path        step 3: keyframe table, presets, map clicks, coverage, import/export (vista_api.paths)
    path_views  step 3's top-down map, 3D preview and notes
    refine      step 4: guidance along the path into a new scene folder (vista_api.refine)
    render      step 5 and the quick preview clip (vista_api.render)
    views       what every component shows after an action, a timer tick or a page load
    session     which session folder an event belongs to (server-side), idle-session cleaning; shared guards
    limits      the studio's caps (StudioLimits): job sizes, disk quota, queue, uploads
    published   the files a view shows, returnable without serving the workspace root
    workspace   session folders, path confinement, upload limits, background jobs
    fields      widget values (blank, NaN, text) as typed values
    images      small PNG renders (live preview, before/after)

Each step function takes the session's folder and returns the message to show; a user's mistake is a VistaError.
"""
