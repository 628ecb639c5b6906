"""sracl_ray.semantic"""
