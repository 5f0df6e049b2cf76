"""Folium maps for operators, patrollers and planners, served with every front-end file the platform's own."""
