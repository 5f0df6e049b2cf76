"""The thematic layers, one module each; ``layers.registry`` names every one of them."""
