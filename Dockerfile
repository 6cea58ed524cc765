# The search in a container. CPU by default; for GPUs:
#   docker build --build-arg TF_PACKAGE="tensorflow[and-cuda]==2.21.0" -t resnet50-search:gpu .
# Data, weights and results are volumes (/data, /weights, /results); see docker-compose.yml.
FROM python:3.11-slim
ARG TF_PACKAGE=tensorflow-cpu==2.21.0
WORKDIR /app
COPY requirements.txt ./
RUN grep -v -e '^tensorflow-cpu' -e '^pytest' -e '^ruff' -e '^hadolint' requirements.txt > /tmp/runtime.txt \
    && pip install --no-cache-dir "${TF_PACKAGE}" -r /tmp/runtime.txt
COPY pyproject.toml README.md run_search.py ./
COPY search ./search
COPY configs ./configs
COPY spaces ./spaces
RUN pip install --no-cache-dir --no-deps . && useradd --create-home --uid 10001 search \
    && mkdir -p /data /weights /results && chown search /results
COPY deploy/entrypoint.sh /usr/local/bin/entrypoint.sh
USER 10001
VOLUME ["/results"]
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
CMD ["--help"]
