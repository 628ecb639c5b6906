"""sracl_ray.sweeps"""
