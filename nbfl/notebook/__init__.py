"""The notebook layer: magics, the live dashboard and its plots. Imports IPython."""
