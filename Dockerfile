# nodeview container image: one image, the command picks the part
# (`relay serve`, `enricher`, `api`). Build: docker build -t nodeview:0.1.0 .
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/nodeview
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY services ./services
COPY nodeview_client ./nodeview_client
RUN /opt/nodeview/bin/pip install .

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 nodeview \
 && useradd --system --uid 10001 --gid nodeview --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin nodeview
COPY --from=build /opt/nodeview /opt/nodeview
ENV PATH=/opt/nodeview/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8080 8081 8082
ENTRYPOINT ["nodeview"]
CMD ["api"]
