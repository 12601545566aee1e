"""ProcSynthDB, MorphSynthDB and FlatWorldDB ("Beyond Flatland" §3.1, §3.2, §4.4) as TF-free generators.

`config` (Synth3DConfig), `classes` (class meshes + the distinctness search), `views` (per-instance pose,
lights, scalings, 2D transforms), `dataset` (work units -> example dicts; rendering in TF-free processes).
"""
