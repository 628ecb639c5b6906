"""sracl-ray: Ray-distributed sweeps and ablations for SRA-CL."""
__version__ = "0.1.0"
