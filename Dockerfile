# Production-like image of the platform; the database is a separate postgis/postgis service.
# Stage 1 fetches the map pages' front-end packages from the npm registry; the platform serves them itself.
FROM node:20-slim AS frontend
WORKDIR /app/webmap
COPY webmap/package.json webmap/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 GIS_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY gis_platform gis_platform
COPY grids grids
COPY layers layers
COPY api api
COPY webmap webmap
COPY migrations migrations
COPY --from=frontend /app/webmap/node_modules webmap/node_modules
RUN pip install --no-cache-dir -e . && python -m webmap.assets build && rm -rf webmap/node_modules \
    && useradd --system --home /data gis && mkdir -p /data && chown gis /data
USER gis
EXPOSE 8000
CMD ["gis-platform", "serve", "--no-demo", "--no-migrate"]
