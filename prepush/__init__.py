"""prepush: publica cada corte del PREP en los servidores de los difusores oficiales."""

__version__ = "0.1.0"
