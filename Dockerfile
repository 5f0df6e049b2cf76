# Production-like image of the platform; the database is a separate postgis/postgis service.
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
RUN pip install --no-cache-dir . && useradd --system --home /data gis && mkdir -p /data && chown gis /data
USER gis
EXPOSE 8000
CMD ["gis-platform", "serve", "--no-demo", "--no-migrate"]
