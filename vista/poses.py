"""`vista poses`, `vista import`, `vista export`: flags -> vista_api.poses / vista_api.export -> printed lines."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from scenes.preflight import DEFAULT_MAX_SIZE_PX

    poses = subparsers.add_parser(
        "poses", help="camera poses for a folder (or zip) of photos, by structure from motion",
        description="Check the photos (blur, duplicates, size), run COLMAP's structure from motion in-process "
                    "(pycolmap; one camera per photo size and focal length), check the poses against the matches "
                    "(photos likely placed wrongly are reported and left out) and write a dataset `vista train` "
                    "reads: images/, transforms.json (nerfstudio format, per-photo intrinsics when photos differ), "
                    "sparse_pc.ply and sfm_report.json (why each photo was or was not used).")
    poses.add_argument("photos", type=Path, help="folder of photos, or a .zip of them")
    poses.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    poses.add_argument("--matcher", default="auto", choices=["auto", "sequential", "exhaustive"],
                       help="which photo pairs to match: sequential (neighbours in capture order plus loop-closure "
                            "pairs, kept only where a neighbours-only model agrees with them: safe for symmetric "
                            "subjects), exhaustive (all pairs, no order needed), auto: sequential when the photos "
                            "have a capture order (numbered frames or EXIF capture times), else exhaustive up to "
                            "100 photos (default: auto)")
    poses.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE_PX,
                       help=f"working resolution: longest image side in pixels (default {DEFAULT_MAX_SIZE_PX})")
    poses.add_argument("--seed", type=int, default=0, help="random seed of COLMAP's mapper (default 0)")
    poses.set_defaults(handler=run_poses)

    importer = subparsers.add_parser(
        "import", help="turn a COLMAP model folder into a dataset `vista train` reads",
        description="Read a COLMAP model (cameras/images/points3D, .bin or .txt; the folder itself or its "
                    "sparse/0) and write transforms.json (nerfstudio format), images/ and sparse_pc.ply. "
                    "instant-ngp, nerfstudio and Blender datasets need no import: `vista train` reads them.")
    importer.add_argument("colmap", type=Path, help="COLMAP model folder (or project folder with sparse/0)")
    importer.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    importer.add_argument("--images", type=Path, help="the photos (default: images/ next to or above the model)")
    importer.set_defaults(handler=run_import)

    export = subparsers.add_parser(
        "export", help="a trained scene's mesh, or its sparse point cloud, as GLB/PLY",
        description="--mesh: marching cubes over the scene's density (inside the occupancy grid) with vertex "
                    "colours from the field; --points: the sparse point cloud from structure from motion "
                    "(the dataset's sparse_pc.ply). Written with trimesh; the format follows the suffix.")
    export.add_argument("scene", type=Path, help="scene folder (from `vista train`) or, for --points, a dataset")
    what = export.add_mutually_exclusive_group(required=True)
    what.add_argument("--mesh", type=Path, help="mesh file to write (.glb or .ply)")
    what.add_argument("--points", type=Path, help="point cloud file to write (.ply or .glb)")
    export.add_argument("--resolution", type=int, default=192,
                        help="marching-cubes grid cells along the longest side (default 192)")
    export.add_argument("--level", type=float, default=None,
                        help="density iso-level in scene units (default: where a ray crossing one grid cell is 50%% "
                             "opaque; lower it for a fuller, noisier mesh)")
    export.set_defaults(handler=run_export)


def run_poses(args: argparse.Namespace) -> int:
    from vista.progress import TerminalProgress
    from vista_api.poses import PosesRequest, estimate_poses

    request = PosesRequest(args.photos, args.out, matcher=args.matcher, max_size_px=args.max_size, seed=args.seed)
    with TerminalProgress() as progress:
        result = estimate_poses(request, progress)
    print(result.report.table())
    print(f"dataset written to {args.out} (report: {result.report_file}); next: vista train {args.out} --out SCENE")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from vista_api.poses import ImportRequest, import_colmap

    print(import_colmap(ImportRequest(args.colmap, args.out, args.images)).summary())
    return 0


def run_export(args: argparse.Namespace) -> int:
    from vista_api.export import MeshRequest, PointsRequest, export_mesh, export_points

    if args.mesh:
        result = export_mesh(MeshRequest(args.scene, args.mesh, resolution=args.resolution, level=args.level))
    else:
        result = export_points(PointsRequest(args.scene, args.points))
    print(result.summary)
    return 0
